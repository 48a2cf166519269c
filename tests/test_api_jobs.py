"""A batch's requests page by page, its errors by code, and the input check, over real HTTP
on SQLite and PostgreSQL. Jobs are moved through the real state machine in SQL (no worker)."""

from __future__ import annotations

import json

import httpx
import pytest
from sqlalchemy import select

from models import jobs
from models.db import Database
from models.states import JobStatus
from models.tables import Job
from models.types import utcnow
from tests.support.api import ApiServer, Tenants


@pytest.fixture
def api(tenant_client: httpx.Client) -> httpx.Client:
    return tenant_client


def _requests(*custom_ids: str) -> list[dict[str, object]]:
    return [{"custom_id": c, "messages": [{"role": "user", "content": c}]} for c in custom_ids]


def _end(
    database_url: str, batch_id: str, outcomes: dict[str, tuple[JobStatus, str | None]]
) -> None:
    """Claim the named jobs and record how they ended, as a worker would."""
    db = Database.from_url(database_url)
    try:
        with db.write() as s:
            rows = s.execute(
                select(Job.custom_id, Job.id).where(
                    Job.batch_id == batch_id, Job.custom_id.in_(list(outcomes))
                )
            )
            ids: dict[str, int] = {row[0]: row[1] for row in rows}
            jobs.mark_dispatched(s, list(ids.values()), "t", now=utcnow())
            jobs.claim(s, "t", now=utcnow(), lease_seconds=30)
        with db.write() as s:
            for custom_id, (status, code) in outcomes.items():
                outcome = jobs.Outcome(
                    job_id=ids[custom_id],
                    attempt=1,
                    status=status,
                    output="answer" if status == JobStatus.SUCCEEDED else None,
                    error_code=code,
                    error_message=f"{code}: {custom_id}" if code else None,
                )
                assert jobs.record(s, outcome, now=utcnow())
    finally:
        db.dispose()


def test_jobs_are_listed_filtered_searched_and_paged(
    api: httpx.Client, shared_database_url: str
) -> None:
    ids = ["alpha-1", "beta-2", "Alpha-3", "gamma_4", "alpha%5", "delta-6", "alpha-7"]
    batch = api.post("/v1/batches", json={"requests": _requests(*ids)}).json()
    path = f"/v1/batches/{batch['id']}/jobs"
    _end(
        shared_database_url,
        batch["id"],
        {
            "beta-2": (JobStatus.SUCCEEDED, None),
            "gamma_4": (JobStatus.FAILED, "upstream_refused"),
            "delta-6": (JobStatus.FAILED, "upstream_refused"),
            "alpha-7": (JobStatus.FAILED, "not_an_answer"),
        },
    )

    everything = api.get(path, params={"limit": 500}).json()
    assert [j["custom_id"] for j in everything["data"]] == ids  # input order
    assert everything["object"] == "list" and everything["has_more"] is False
    assert (everything["first_id"], everything["last_id"]) == ("alpha-1", "alpha-7")
    beta = everything["data"][1]
    assert beta["status"] == "succeeded" and beta["output"] == "answer" and beta["attempts"] == 1

    failed = api.get(path, params={"status": "failed"}).json()["data"]
    assert [j["custom_id"] for j in failed] == ["gamma_4", "delta-6", "alpha-7"]
    assert failed[0]["error"] == {
        "code": "upstream_refused",
        "message": "upstream_refused: gamma_4",
    }

    # Search ignores case, and % or _ are plain characters, not wildcards.
    found = api.get(path, params={"search": "ALPHA"}).json()["data"]
    assert [j["custom_id"] for j in found] == ["alpha-1", "Alpha-3", "alpha%5", "alpha-7"]
    assert [j["custom_id"] for j in api.get(path, params={"search": "%"}).json()["data"]] == [
        "alpha%5"
    ]
    assert [j["custom_id"] for j in api.get(path, params={"search": "_"}).json()["data"]] == [
        "gamma_4"
    ]
    both = api.get(path, params={"search": "alpha", "status": "queued"}).json()["data"]
    assert [j["custom_id"] for j in both] == ["alpha-1", "Alpha-3", "alpha%5"]

    # Pages of 3 follow one another without gap or repeat, filters kept.
    seen, after = [], None
    while True:
        params: dict[str, str | int] = {"limit": 3, **({"after": after} if after else {})}
        page = api.get(path, params=params).json()
        seen += [j["custom_id"] for j in page["data"]]
        if not page["has_more"]:
            break
        after = page["last_id"]
    assert seen == ids
    second = api.get(path, params={"search": "alpha", "limit": 2, "after": "Alpha-3"}).json()
    assert [j["custom_id"] for j in second["data"]] == ["alpha%5", "alpha-7"]


def test_errors_are_grouped_by_code(api: httpx.Client, shared_database_url: str) -> None:
    batch = api.post("/v1/batches", json={"requests": _requests("a", "b", "c", "d", "e")}).json()
    path = f"/v1/batches/{batch['id']}/errors"
    assert api.get(path).json() == {"object": "list", "data": [], "total": 0}
    _end(
        shared_database_url,
        batch["id"],
        {
            "a": (JobStatus.FAILED, "not_an_answer"),
            "b": (JobStatus.FAILED, "upstream_refused"),
            "c": (JobStatus.SUCCEEDED, None),
            "d": (JobStatus.FAILED, "upstream_refused"),
        },
    )
    api.post(f"/v1/batches/{batch['id']}/cancel").raise_for_status()  # "e" was still queued
    body = api.get(path).json()
    assert body["total"] == 4
    assert [(g["code"], g["count"], g["custom_ids"]) for g in body["data"]] == [
        ("upstream_refused", 2, ["b", "d"]),
        ("batch_cancelled", 1, ["e"]),
        ("not_an_answer", 1, ["a"]),
    ]
    assert body["data"][0]["message"] == "upstream_refused: b"


def test_listing_and_errors_refuse_bad_input_with_4xx(
    api: httpx.Client, shared_api: ApiServer, tenants: Tenants
) -> None:
    batch = api.post("/v1/batches", json={"requests": _requests("x")}).json()
    path = f"/v1/batches/{batch['id']}/jobs"
    cases: list[tuple[dict[str, str | int], str]] = [
        ({"status": "exploded"}, "status"),
        ({"limit": 0}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"search": "x" * 600}, "search"),
    ]
    for params, field in cases:
        r = api.get(path, params=params)
        assert r.status_code == 400, (params, r.text)
        assert field in r.json()["error"]["message"], r.text
    # An `after` naming no request of the batch is not found, as for the batch listing.
    r = api.get(path, params={"after": "no-such-id"})
    assert r.status_code == 404 and "after" in r.json()["error"]["message"], r.text
    for route in ("jobs", "errors"):
        assert api.get(f"/v1/batches/batch_nope/{route}").status_code == 404
        # Another tenant's batch is not found either; no key at all is a 401.
        other = shared_api.client(tenants.key())
        assert other.get(f"/v1/batches/{batch['id']}/{route}").status_code == 404
        assert shared_api.client().get(f"/v1/batches/{batch['id']}/{route}").status_code == 401


def _check(api: httpx.Client, content: bytes, **form: str) -> httpx.Response:
    return api.post("/v1/input_checks", files={"file": ("in.jsonl", content)}, data=form or None)


def test_the_input_check_names_every_bad_line_and_stores_nothing(api: httpx.Client) -> None:
    good = [
        {"custom_id": "n1", "messages": [{"role": "user", "content": "hi"}]},
        {
            "custom_id": "o1",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {"model": "gpt-4", "messages": [{"role": "user", "content": "hi"}]},
        },
    ]
    content = "\n".join(json.dumps(g) for g in good).encode()
    r = _check(api, content, model="gpt-4-32k", completion_window="2h")
    assert r.status_code == 200, r.text
    assert r.json() == {
        "object": "batch.input_check",
        "valid": True,
        "requests": 2,
        "models": {"gpt-4-32k": 1, "gpt-4": 1},
        "completion_window": "2h",
        "errors": [],
        "error_count": 0,
        "message": None,
    }

    bad = content + b'\n\n{"custom_id": "n1", "messages": [{"role": "user", "content": "x"}]}'
    bad += b'\nnot json\n{"custom_id": "z", "messages": []}\n'
    report = _check(api, bad).json()
    assert report["valid"] is False and report["requests"] == 5 and report["models"] == {}
    assert report["error_count"] == 3
    assert [(e["line"], e["message"]) for e in report["errors"]] == [
        (4, "custom_id 'n1' is already used by line 1"),
        (5, "not valid JSON (Expecting value at column 1)"),
        (6, "messages must be a non-empty list"),
    ]
    assert report["message"].startswith("line 4: custom_id 'n1'")
    empty = _check(api, b"\n \n").json()
    assert empty["valid"] is False and empty["errors"][0]["line"] == 1
    # Nothing was stored: no file, no batch.
    assert api.get("/v1/files").json()["data"] == []
    assert api.get("/v1/batches").json()["data"] == []


def test_the_input_check_refuses_a_malformed_call(api: httpx.Client, shared_api: ApiServer) -> None:
    assert _check(api, b"{}", completion_window="soon").status_code == 400
    no_file = api.post("/v1/input_checks", data={"model": "gpt-4"})
    assert no_file.status_code == 400 and "file" in no_file.json()["error"]["message"]
    not_multipart = api.post("/v1/input_checks", json={"file": "x"})
    assert not_multipart.status_code == 400
    anonymous = shared_api.client().post("/v1/input_checks", files={"file": ("a", b"{}")})
    assert anonymous.status_code == 401
