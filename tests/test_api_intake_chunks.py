"""Batches larger than one written chunk, on SQLite and PostgreSQL (no workers run here).

Requests are checked in a thread while the good ones are written in chunks (api/overlap.py,
models/bulk.py): every job reads back as sent and in order across chunks, and a bad request
found after chunks were written still leaves nothing behind.
"""

from __future__ import annotations

import itertools
import json

import httpx
import pytest

from api.batch_input import Intake, Limits
from api.overlap import CheckThread
from models.batches import WRITE_CHUNK
from models.requests import Defaults

# Past two SQL chunks, so some are written before a late bad request is found.
SIZE = 2 * WRITE_CHUNK + 500


@pytest.fixture
def api(tenant_client: httpx.Client) -> httpx.Client:
    return tenant_client


def _request(i: int) -> dict[str, object]:
    request: dict[str, object] = {
        "custom_id": f"r{i}",
        "messages": [{"role": "user", "content": f'Привет {i} \\ " \t 😀'}],
    }
    if i % 3 == 0:
        request["temperature"] = i % 7 / 4
    if i % 5 == 0:
        request["system_message"] = f"sys {i} ü"
    return request


def _upload(api: httpx.Client, lines: list[dict[str, object]]) -> str:
    content = "\n".join(json.dumps(line, ensure_ascii=False) for line in lines).encode()
    r = api.post("/v1/files", data={"purpose": "batch"}, files={"file": ("in.jsonl", content)})
    assert r.status_code == 200, r.text
    file_id: str = r.json()["id"]
    return file_id


def test_a_large_batch_reads_back_as_sent_in_order(api: httpx.Client) -> None:
    requests = [_request(i) for i in range(SIZE)]
    r = api.post("/v1/batches", json={"requests": requests})
    assert r.status_code == 200, r.text
    batch = r.json()
    assert batch["request_counts"]["total"] == SIZE
    content = api.get(f"/v1/files/{batch['input_file_id']}/content")
    assert content.status_code == 200
    lines = [json.loads(line) for line in content.text.splitlines()]
    assert [line["custom_id"] for line in lines] == [f"r{i}" for i in range(SIZE)]
    for line, sent in zip(lines, requests, strict=True):
        body = line["body"]
        assert body["messages"] == sent["messages"]
        assert body.get("temperature") == sent.get("temperature")
        assert body.get("system_message") == sent.get("system_message")


def test_a_bad_request_after_written_chunks_writes_nothing(api: httpx.Client) -> None:
    requests = [_request(i) for i in range(SIZE)]
    requests[SIZE - 100] = {"custom_id": "bad", "messages": [{"role": "robot", "content": "x"}]}
    requests[SIZE - 10]["custom_id"] = "r0"
    r = api.post("/v1/batches", json={"requests": requests})
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert [line["line"] for line in error["lines"]] == [SIZE - 99, SIZE - 9]
    assert "role" in error["lines"][0]["message"]
    assert "already used by request 1" in error["lines"][1]["message"]
    assert api.get("/v1/batches").json()["data"] == []


def test_a_file_line_refused_late_at_creation_writes_nothing(api: httpx.Client) -> None:
    # Every line names its model but one, which takes the batch's: a model nothing serves.
    lines: list[dict[str, object]] = [
        {"custom_id": f"r{i}", "body": {"model": "gpt-4", "messages": _request(i)["messages"]}}
        for i in range(SIZE)
    ]
    del lines[SIZE - 5]["body"]["model"]  # type: ignore[attr-defined]
    file_id = _upload(api, lines)
    r = api.post("/v1/batches", json={"input_file_id": file_id, "model": "no-such-model"})
    assert r.status_code in (400, 422), r.text
    error = r.json()["error"]
    assert [line["line"] for line in error["lines"]] == [SIZE - 4]
    assert "no-such-model" in error["lines"][0]["message"]
    assert api.get("/v1/batches").json()["data"] == []
    # The file itself is fine for a batch that serves its lines.
    r = api.post("/v1/batches", json={"input_file_id": file_id, "model": "gpt-4"})
    assert r.status_code == 200 and r.json()["request_counts"]["total"] == SIZE


def test_the_checks_stop_when_the_writer_fails() -> None:
    """An error on the writing side ends the checking thread (it does not check on, or
    wait forever on a full hand-over queue)."""
    taken: list[int] = []

    def endless(thread: CheckThread) -> None:
        for n in thread.stoppable(itertools.count(1)):  # never ends by itself
            taken.append(n)
            intake.take(n, {"custom_id": f"r{n}", "messages": [_MESSAGE]})

    intake = Intake(Defaults(), Limits(10**9, 10**6), label="request")
    with pytest.raises(RuntimeError), CheckThread(intake, endless) as thread:
        for _chunk in thread.chunks():
            raise RuntimeError("the database went away")
    assert not thread.thread.is_alive() and len(taken) < 100_000


def test_an_error_of_the_checks_reaches_the_writer() -> None:
    def failing(thread: CheckThread) -> None:
        for n in thread.stoppable(range(1, 2000)):
            intake.take(n, {"custom_id": f"r{n}", "messages": [_MESSAGE]})
        raise ValueError("the spool could not be read")

    intake = Intake(Defaults(), Limits(10**9, 10**6), label="request")
    written = 0
    with pytest.raises(ValueError, match="spool"), CheckThread(intake, failing) as thread:
        for chunk in thread.chunks():
            written += len(chunk)
    assert written <= 1999 and not thread.thread.is_alive()


_MESSAGE = {"role": "user", "content": "x"}
