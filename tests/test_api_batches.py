"""Native batch routes over real HTTP, on SQLite and PostgreSQL (no workers run here)."""

from __future__ import annotations

import json
from urllib.parse import quote

import httpx
import pytest


@pytest.fixture
def api(tenant_client: httpx.Client) -> httpx.Client:
    return tenant_client


def _request(custom_id: str, text: str = "Привет! Как дела?", **extra: object) -> dict[str, object]:
    return {"custom_id": custom_id, "messages": [{"role": "user", "content": text}], **extra}


def test_create_applies_defaults_and_answers_the_batch_at_once(api: httpx.Client) -> None:
    body = {
        "requests": [
            _request("a"),
            _request("b", model="gpt-4", temperature=0.2, system_message="Be brief."),
        ],
        "model": "gpt-4-32k",
        "temperature": 1.5,
        "system_message": "Answer in Russian.",
        "metadata": {"project": "docs"},
        "completion_window": "2h",
    }
    r = api.post("/v1/batches", json=body)
    assert r.status_code == 200, r.text
    batch = r.json()
    assert batch["object"] == "batch" and batch["id"].startswith("batch_")
    assert batch["status"] == "in_progress"
    assert batch["request_counts"] == {"total": 2, "completed": 0, "failed": 0}
    assert batch["counts"]["queued"] == 2 and sum(batch["counts"].values()) == 2
    assert batch["metadata"] == {"project": "docs"}
    assert batch["expires_at"] - batch["created_at"] == 7200
    # Input counts every message and the system message each request is sent with.
    chars_in = 2 * len("Привет! Как дела?") + len("Answer in Russian.") + len("Be brief.")
    assert batch["usage"] == {
        "input_tokens": 0,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 0,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 0,
        "input_characters": chars_in,
        "output_characters": 0,
    }
    assert batch["output_file_id"] is None
    # Its input file: the requests as OpenAI batch lines, each as it runs.
    assert batch["input_file_id"] == "file-input-" + batch["id"].removeprefix("batch_")
    lines = api.get(f"/v1/files/{batch['input_file_id']}/content").text.splitlines()
    assert [json.loads(line) for line in lines] == [
        {
            "custom_id": "a",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": "gpt-4-32k",
                "messages": [{"role": "user", "content": "Привет! Как дела?"}],
                "temperature": 1.5,
                "system_message": "Answer in Russian.",
            },
        },
        {
            "custom_id": "b",
            "method": "POST",
            "url": "/v1/chat/completions",
            "body": {
                "model": "gpt-4",
                "messages": [{"role": "user", "content": "Привет! Как дела?"}],
                "temperature": 0.2,
                "system_message": "Be brief.",
            },
        },
    ]
    described = api.get(f"/v1/files/{batch['input_file_id']}").json()
    assert described["purpose"] == "batch" and described["bytes"] == len(
        api.get(f"/v1/files/{batch['input_file_id']}/content").content
    )
    assert api.delete(f"/v1/files/{batch['input_file_id']}").status_code == 409

    a = api.get(f"/v1/batches/{batch['id']}/jobs/a").json()
    assert (a["model"], a["temperature"], a["system_message"]) == (
        "gpt-4-32k",
        1.5,
        "Answer in Russian.",
    )
    assert a["messages"] == [{"role": "user", "content": "Привет! Как дела?"}]
    assert (a["status"], a["position"], a["attempts"], a["output"]) == ("queued", 0, 0, None)
    b = api.get(f"/v1/batches/{batch['id']}/jobs/b").json()
    assert (b["model"], b["temperature"], b["system_message"]) == ("gpt-4", 0.2, "Be brief.")

    again = api.get(f"/v1/batches/{batch['id']}").json()
    assert again == batch


def test_list_pages_newest_first_and_filters_by_status(api: httpx.Client) -> None:
    ids = [
        api.post("/v1/batches", json={"requests": [_request("x")]}).json()["id"] for _ in range(5)
    ]
    first = api.get("/v1/batches", params={"limit": 2}).json()
    assert first["object"] == "list" and first["has_more"] is True
    assert [b["id"] for b in first["data"]] == ids[::-1][:2]
    assert (first["first_id"], first["last_id"]) == (ids[4], ids[3])
    rest = api.get("/v1/batches", params={"limit": 10, "after": first["last_id"]}).json()
    assert [b["id"] for b in rest["data"]] == ids[::-1][2:] and rest["has_more"] is False

    api.post(f"/v1/batches/{ids[0]}/cancel")
    cancelling = api.get("/v1/batches", params={"status": "cancelling"}).json()["data"]
    assert [b["id"] for b in cancelling] == [ids[0]]
    bad = api.get("/v1/batches", params={"status": "sleeping"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "status"


def test_cancel_ends_queued_requests_at_once_and_cannot_be_undone(api: httpx.Client) -> None:
    batch = api.post("/v1/batches", json={"requests": [_request("a"), _request("b")]}).json()
    r = api.post(f"/v1/batches/{batch['id']}/cancel")
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "cancelling" and r.json()["cancelling_at"] is not None
    assert r.json()["counts"]["cancelled"] == 2
    job = api.get(f"/v1/batches/{batch['id']}/jobs/a").json()
    assert job["status"] == "cancelled" and job["error"]["code"] == "batch_cancelled"
    lines = api.get(f"/v1/batches/{batch['id']}/results").text.splitlines()
    assert len(lines) == 2  # cancelled requests are results too


def test_results_hold_only_finished_requests(api: httpx.Client) -> None:
    batch = api.post("/v1/batches", json={"requests": [_request("a")]}).json()
    r = api.get(f"/v1/batches/{batch['id']}/results")
    assert r.status_code == 200 and r.headers["content-type"] == "application/x-ndjson"
    assert r.text == ""


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/batches/batch_missing"),
        ("POST", "/v1/batches/batch_missing/cancel"),
        ("GET", "/v1/batches/batch_missing/results"),
        ("GET", "/v1/batches/batch_missing/jobs/a"),
        ("GET", "/v1/batches/batch_missing/events"),
        ("GET", "/v1/files/file-missing"),
    ],
)
def test_unknown_ids_are_404_in_the_error_shape(api: httpx.Client, method: str, path: str) -> None:
    r = api.request(method, path)
    assert r.status_code == 404
    error = r.json()["error"]
    assert error["code"] == "not_found" and error["type"] == "not_found_error"
    assert "missing" in error["message"]


def test_unknown_custom_id_is_404(api: httpx.Client) -> None:
    batch = api.post("/v1/batches", json={"requests": [_request("a")]}).json()
    r = api.get(f"/v1/batches/{batch['id']}/jobs/zzz")
    assert r.status_code == 404 and "zzz" in r.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "param", "needle"),
    [
        ({}, "requests", "either requests"),
        ({"requests": [_request("a")], "input_file_id": "file-x"}, "requests", "either"),
        ({"requests": [_request("a")], "completion_window": "soon"}, None, "completion_window"),
        ({"requests": [_request("a")], "endpoint": "/v1/images"}, "endpoint", "chat"),
        ({"requests": [_request("a")], "temperature": 3}, "temperature", "2"),
        (
            {"requests": [_request("a")], "metadata": {str(i): "v" for i in range(17)}},
            "metadata",
            "16",
        ),
        ({"requests": "not a list"}, "requests", "list"),
    ],
)
def test_bad_fields_are_named_and_nothing_is_written(
    api: httpx.Client, body: dict[str, object], param: str | None, needle: str
) -> None:
    r = api.post("/v1/batches", json=body)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_request"
    if param is not None:
        assert error["param"] == param
    assert needle in error["message"]
    assert api.get("/v1/batches").json()["data"] == []


def test_bad_requests_are_all_named_and_nothing_is_written(api: httpx.Client) -> None:
    requests = [
        _request("ok"),
        {"custom_id": "", "messages": [{"role": "user", "content": "x"}]},
        {"custom_id": "c", "messages": []},
        {"custom_id": "d", "messages": [{"role": "robot", "content": "x"}]},
        {"custom_id": "e", "messages": [{"role": "user", "content": "x"}], "temperature": "hot"},
        "a string",
    ]
    r = api.post("/v1/batches", json={"requests": requests})
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "invalid_jsonl" and error["param"] == "request 2"
    assert [line["line"] for line in error["lines"]] == [2, 3, 4, 5, 6]
    assert "custom_id" in error["lines"][0]["message"]
    assert "role" in error["lines"][2]["message"]
    assert "temperature" in error["lines"][3]["message"]
    assert api.get("/v1/batches").json()["data"] == []


def test_duplicate_custom_id_is_422_naming_both_requests(api: httpx.Client) -> None:
    r = api.post("/v1/batches", json={"requests": [_request("a"), _request("b"), _request("a")]})
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "duplicate_custom_id"
    assert error["lines"] == [{"line": 3, "message": "custom_id 'a' is already used by request 1"}]
    assert api.get("/v1/batches").json()["data"] == []


def test_malformed_json_body_is_400(api: httpx.Client) -> None:
    r = api.post(
        "/v1/batches", content=b'{"requests": [', headers={"content-type": "application/json"}
    )
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_request"
    assert "JSON" in r.json()["error"]["message"]


def test_a_custom_id_with_slashes_and_spaces_is_addressable(api: httpx.Client) -> None:
    custom_id = "reports/2026 11/q?1#x"
    batch = api.post("/v1/batches", json={"requests": [_request(custom_id)]}).json()
    r = api.get(f"/v1/batches/{batch['id']}/jobs/" + quote(custom_id, safe="/"))
    assert r.status_code == 200, r.text
    assert r.json()["custom_id"] == custom_id
