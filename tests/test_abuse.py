"""Every reproducer of a request costing more than it should, kept as a regression test:
bad input answered 4xx naming the field and writing nothing, cost before authentication,
amplification, and the smaller holes. (Limits per tenant: tests/test_api_quotas.py;
outages: tests/test_api_outages.py.)"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from models.apikeys import list_keys, revoke_key
from models.db import Database
from models.tables import Batch, Job
from models.types import utcnow
from tests.support.api import ApiServer, Tenants

LINE = {"custom_id": "a", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def api(module_api: Callable[..., ApiServer]) -> ApiServer:
    return module_api(KEY_REQUESTS_PER_SECOND="100000", AUTH_FAILURES_PER_MINUTE="100000")


@pytest.fixture
def client(api: ApiServer, tenants: Tenants) -> Iterator[httpx.Client]:
    client = api.client(tenants.key())
    yield client
    # Whatever was refused left nothing behind.
    assert client.get("/v1/batches").json()["data"] == []
    assert client.get("/v1/files").json()["data"] == []


def _post_json(client: httpx.Client, body: bytes) -> httpx.Response:
    return client.post("/v1/batches", content=body, headers={"content-type": "application/json"})


def _upload(client: httpx.Client, content: bytes) -> httpx.Response:
    files = {"file": ("in.jsonl", io.BytesIO(content))}
    return client.post("/v1/files", data={"purpose": "batch"}, files=files)


def _reset_peak(api: ApiServer) -> None:
    assert api.proc is not None
    Path(f"/proc/{api.proc.pid}/clear_refs").write_text("5")  # the peak RSS starts over


def _peak_rss_mib(api: ApiServer) -> float:
    assert api.proc is not None
    for line in Path(f"/proc/{api.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


@pytest.mark.parametrize("window", ["999999999d", "99999999999999999999d", "31d", " 24h"])
def test_an_unusable_completion_window_is_400_naming_it(client: httpx.Client, window: str) -> None:
    r = client.post("/v1/batches", json={"requests": [LINE], "completion_window": window})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == "completion_window"


_SURROGATES = [
    (rb'{"custom_id": "a", "messages": [{"role": "user", "content": "\ud800"}]}', "content"),
    (rb'{"custom_id": "\udc00", "messages": [{"role": "user", "content": "x"}]}', "custom_id"),
    (rb'{"custom_id": "a", "messages": [{"role": "user", "content": "\ud800\u0041"}]}', "content"),
]


@pytest.mark.parametrize(("request_text", "field"), _SURROGATES)
def test_a_lone_surrogate_inline_is_400_naming_the_field(
    client: httpx.Client, request_text: bytes, field: str
) -> None:
    r = _post_json(client, b'{"requests": [' + request_text + b"]}")
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["param"] == "request 1" and field in error["lines"][0]["message"]
    assert "surrogate" in error["lines"][0]["message"]


_BATCH_FIELDS = [
    (rb'"system_message": "\ud800"', "system_message"),
    (rb'"metadata": {"k": "\udfff"}', "metadata"),
    (rb'"temperature": "1.5"', "temperature"),
]


@pytest.mark.parametrize(("field", "param"), _BATCH_FIELDS)
def test_bad_batch_level_fields_are_400_naming_them(
    client: httpx.Client, field: bytes, param: str
) -> None:
    r = _post_json(client, b'{"requests": [{"custom_id": "a", "messages": []}], ' + field + b"}")
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param


def test_a_string_temperature_is_refused_at_both_levels(client: httpx.Client) -> None:
    request = {**LINE, "temperature": "1.5"}
    r = client.post("/v1/batches", json={"requests": [request]})
    assert r.status_code == 400 and "temperature" in r.json()["error"]["lines"][0]["message"]


def test_deep_nesting_is_400_not_a_crash(client: httpx.Client) -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    r = _upload(client, json.dumps(LINE).encode() + b"\n" + deep)
    assert r.status_code == 400, r.text
    assert r.json()["error"]["lines"][0]["line"] == 2
    inline = _post_json(client, b'{"requests": [' + deep + b"]}")
    assert inline.status_code == 400 and inline.json()["error"]["param"] == "body"


_NEVER_RUN = [
    (rb'{"custom_id": "e\ud800", "messages": [{"role": "user", "content": "x"}]}', "custom_id"),
    (b'{"custom_id": "e", "messages": [{"role": "user", "content": "\xed\xa0\x80"}]}', "UTF-8"),
]


@pytest.mark.parametrize(("line", "needle"), _NEVER_RUN)
def test_an_upload_that_could_never_run_is_refused_at_upload(
    client: httpx.Client, line: bytes, needle: str
) -> None:
    r = _upload(client, json.dumps(LINE).encode() + b"\n" + line)
    assert r.status_code == 400, r.text
    problem = r.json()["error"]["lines"][0]
    assert problem["line"] == 2 and needle in problem["message"]


@pytest.mark.parametrize(
    ("custom_id", "needle"), [("a\nb", "control characters"), ("x/events", "/events")]
)
def test_a_custom_id_no_route_could_address_is_refused(
    client: httpx.Client, custom_id: str, needle: str
) -> None:
    r = client.post("/v1/batches", json={"requests": [{**LINE, "custom_id": custom_id}]})
    assert r.status_code == 400 and needle in r.json()["error"]["lines"][0]["message"]


def test_a_call_without_a_key_costs_no_body(api: ApiServer) -> None:
    """60 MB of `[],` without a key: answered 401 before the body is read, memory flat."""
    _reset_peak(api)
    before = _peak_rss_mib(api)
    piece = b"[]," * 20_000
    pieces = 1000
    sent = 0

    def body() -> Iterator[bytes]:
        nonlocal sent
        yield b'{"requests": ['
        for _ in range(pieces):
            sent += len(piece)
            yield piece
        yield b"[]]}"

    started = time.monotonic()
    r = httpx.post(
        api.url + "/v1/batches",
        content=body(),
        headers={"content-type": "application/json"},
        timeout=30,
    )
    assert r.status_code == 401 and r.headers["connection"] == "close"
    assert sent < pieces * len(piece) // 4, sent  # the rest was never taken
    assert time.monotonic() - started < 5
    assert _peak_rss_mib(api) - before < 20
    assert httpx.get(api.url + "/healthz").status_code == 200


def test_a_caller_without_a_key_may_send_a_few_kilobytes(api: ApiServer) -> None:
    r = httpx.post(api.url + "/healthz", content=b"x" * 9000)
    assert r.status_code == 413 and "ANONYMOUS_MAX_BODY_BYTES" in r.json()["error"]["message"]
    assert httpx.post(api.url + "/v1/batches", content=b"x" * 9000).status_code == 401


def test_big_bodies_are_taken_in_a_request_at_a_time(api: ApiServer, tenants: Tenants) -> None:
    """A 48 MB inline batch and a 48 MB upload: memory grows by a fixed allowance (the
    chunks of requests in flight, SQLite's page cache, the allocator's arenas: 10-14 MiB
    measured, the same for a 12 MB body), not with the body."""
    client = api.client(tenants.key())
    requests = [
        {"custom_id": f"r{i}", "messages": [{"role": "user", "content": f"{i} " + "x" * 12_000}]}
        for i in range(4000)
    ]
    inline = json.dumps({"requests": requests}).encode()
    lines = "\n".join(json.dumps(r) for r in requests).encode()
    _reset_peak(api)
    before = _peak_rss_mib(api)
    created = _post_json(client, inline)
    assert created.status_code == 200, created.text
    uploaded = _upload(client, lines)
    assert uploaded.status_code == 200, uploaded.text
    grown = _peak_rss_mib(api) - before
    assert grown < len(inline) / 2**20 / 3, f"{grown:.1f} MiB for {len(inline) / 2**20:.1f} MiB"
    assert created.json()["request_counts"]["total"] == len(requests)
    content = client.get(f"/v1/files/{uploaded.json()['id']}/content").content
    assert content == lines


def test_a_batch_system_message_is_counted_and_kept_once(
    api: ApiServer, tenants: Tenants, shared_database_url: str
) -> None:
    """A 245 kB request used to write 200 MB of rows: the system message of every job."""
    client = api.client(tenants.key())
    system = "s" * 700_000
    big = {"custom_id": "big", "messages": [{"role": "user", "content": "m" * 400_000}]}
    refused = client.post("/v1/batches", json={"requests": [LINE, big], "system_message": system})
    assert refused.status_code == 413 and refused.json()["error"]["param"] == "request 2"
    requests = [{**LINE, "custom_id": f"q{i}"} for i in range(200)]
    r = client.post("/v1/batches", json={"requests": requests, "system_message": system})
    assert r.status_code == 200, r.text
    batch_id = r.json()["id"]
    db = Database.from_url(shared_database_url)
    try:
        with db.read() as session:
            per_job = session.scalar(
                select(func.coalesce(func.sum(func.length(Job.system_message)), 0)).where(
                    Job.batch_id == batch_id
                )
            )
            stored = session.scalar(select(Batch.system_message).where(Batch.id == batch_id))
    finally:
        db.dispose()
    assert per_job == 0 and stored == system  # once, on the batch
    job = client.get(f"/v1/batches/{batch_id}/jobs/q7").json()
    assert job["system_message"] == system
    assert r.json()["usage"]["input_characters"] == 200 * (len("hi") + len(system))


def test_an_event_stream_ends_soon_after_its_key_is_revoked(
    api: ApiServer, tenants: Tenants, shared_database_url: str
) -> None:
    tenant = f"revoked-{time.monotonic_ns()}"
    client = api.client(tenants.key(tenant))
    batch = client.post("/v1/batches", json={"requests": [LINE]}).json()
    db = Database.from_url(shared_database_url)
    try:
        with client.stream("GET", f"/v1/batches/{batch['id']}/events") as stream:
            lines = stream.iter_lines()
            assert next(lines) == "event: progress"
            with db.write() as session:
                revoke_key(session, list_keys(session, tenant)[0].id, now=utcnow())
            revoked_at = time.monotonic()
            rest = list(lines)  # the server ends the stream
        took = time.monotonic() - revoked_at
    finally:
        db.dispose()
    assert "event: closed" in rest and any("invalid_api_key" in line for line in rest)
    assert took < 5, took
