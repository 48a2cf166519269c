"""The API over a running pipeline: live events, resumption, results, metrics, and the
upstream key nowhere to be seen."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest
import redis
from sqlalchemy import text

from cli.client import SseEvent, parse_sse
from models.db import Database
from models.rediskeys import RedisKeys
from tests.support.api import Running
from tests.support.emulator import marker
from tests.support.pipeline import jobs_of
from tests.support.stack import UPSTREAM_KEY
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow


def _events(
    client: httpx.Client, path: str, replay: str | None = None, **headers: str
) -> Iterator[SseEvent]:
    timeout = httpx.Timeout(10.0, read=30.0)
    params = {"replay": replay} if replay else None
    with client.stream("GET", path, params=params, headers=headers, timeout=timeout) as r:
        assert r.status_code == 200, r.read()
        assert r.headers["content-type"].startswith("text/event-stream")
        yield from parse_sse(r.iter_lines())


def _requests(n: int, **options: object) -> list[dict[str, object]]:
    return [
        {
            "custom_id": f"q{i}",
            "messages": [
                {"role": "user", "content": f"Вопрос {i} {marker(tag=f'q{i}', **options)}"}
            ],
        }
        for i in range(n)
    ]


def test_batch_events_follow_every_job_to_the_end(running: Running, database: Database) -> None:
    api = running.api
    batch = api.post("/v1/batches", json={"requests": _requests(30)}).json()
    events = list(_events(api, f"/v1/batches/{batch['id']}/events"))
    assert events[0].event == "progress" and events[0].json()["total"] == 30
    assert events[-1].event == "end"
    end = events[-1].json()
    assert end["status"] == "completed" and end["request_counts"]["completed"] == 30
    finished = {
        e.json()["custom_id"]
        for e in events
        if e.event == "job" and e.json()["status"] == "succeeded"
    }
    assert finished == {f"q{i}" for i in range(30)}
    assert all(e.id for e in events if e.event == "job")  # resumable: every job event has an id
    progress = [e.json() for e in events if e.event == "progress"]
    assert progress[-1]["counts"]["succeeded"] == 30 and progress[-1]["status"] == "completed"

    # After the end: without replay only the summary; with it, every job event there was.
    late = list(_events(api, f"/v1/batches/{batch['id']}/events"))
    assert [e.event for e in late] == ["progress", "end"]
    history = list(_events(api, f"/v1/batches/{batch['id']}/events", replay="true"))
    jobs_seen = [(e.json()["custom_id"], e.json()["status"]) for e in history if e.event == "job"]
    assert sorted(jobs_seen) == sorted(
        [(f"q{i}", s) for i in range(30) for s in ("running", "succeeded")]
    )
    assert history[-1].event == "end"

    # Results: JSONL in input order, by custom_id, and each matching SQL.
    lines = [
        json.loads(line) for line in api.get(f"/v1/batches/{batch['id']}/results").text.splitlines()
    ]
    stored = {job.custom_id: job for job in jobs_of(database, batch["id"])}
    assert [line["custom_id"] for line in lines] == [f"q{i}" for i in range(30)]
    for line in lines:
        job = stored[line["custom_id"]]
        assert line["status"] == "succeeded" and line["output"] == job.output and job.output
        assert line["usage"]["output_characters"] == len(job.output)
    by_id = api.get(f"/v1/batches/{batch['id']}/results", params={"order": "custom_id"}).text
    assert [json.loads(x)["custom_id"] for x in by_id.splitlines()] == sorted(stored)


def test_job_events_stream_the_text_and_resume_after_the_last_id(
    running: Running, database: Database, redis_url: str, redis_prefix: str
) -> None:
    api = running.api
    batch = api.post("/v1/batches", json={"requests": _requests(1, chunks=12)}).json()
    path = f"/v1/batches/{batch['id']}/jobs/q0/events"
    events = list(_events(api, path))
    [job] = jobs_of(database, batch["id"])
    chunks = [e for e in events if e.event == "chunk"]
    assert len(chunks) > 1 and "".join(e.json()["text"] for e in chunks) == job.output
    assert events[-1].event == "done"
    assert events[-1].json() == {
        "attempt": 1,
        "status": "succeeded",
        "chars": len(job.output or ""),
    }

    resumed = list(_events(api, path, **{"Last-Event-ID": chunks[1].id or ""}))
    assert [e.id for e in resumed] == [e.id for e in events[2:]]

    # Redis forgot the stream: the stored result answers instead.
    client = redis.Redis.from_url(redis_url)
    client.delete(RedisKeys(redis_prefix).job_stream(batch["id"], "q0"))
    client.close()
    from_sql = list(_events(api, path))
    assert [e.event for e in from_sql] == ["chunk", "done"]
    assert from_sql[0].json() == {"attempt": 1, "text": job.output, "offset": 0}


def test_results_while_running_hold_what_has_finished(running: Running, database: Database) -> None:
    api = running.api
    slow = {f"q{i}": {"delay_ms": 400} for i in range(5, 10)}
    requests = _requests(5) + [
        {
            "custom_id": cid,
            "messages": [{"role": "user", "content": f"{cid} {marker(tag=cid, **o)}"}],
        }
        for cid, o in slow.items()
    ]
    batch = api.post("/v1/batches", json={"requests": requests}).json()
    wait_until(
        lambda: api.get(f"/v1/batches/{batch['id']}").json()["counts"]["succeeded"] >= 5,
        timeout=30,
        what="the fast requests to succeed",
    )
    lines = api.get(f"/v1/batches/{batch['id']}/results").text.splitlines()
    assert 5 <= len(lines) < 10
    assert all(json.loads(line)["status"] == "succeeded" for line in lines)


def test_cancel_over_http_stops_running_jobs_keeping_partial_output(
    running: Running, database: Database, redis_url: str, redis_prefix: str
) -> None:
    api = running.api
    batch = api.post("/v1/batches", json={"requests": _requests(5, delay_ms=500, chunks=40)}).json()
    path = f"/v1/batches/{batch['id']}"
    wait_until(
        lambda: api.get(path).json()["counts"]["running"] == 5, timeout=30, what="5 jobs running"
    )
    client = redis.Redis.from_url(redis_url)
    streams = [RedisKeys(redis_prefix).job_stream(batch["id"], f"q{i}") for i in range(5)]
    try:
        wait_until(
            lambda: all(client.xlen(key) for key in streams),
            timeout=30,
            what="every running job to stream some text",
        )
    finally:
        client.close()
    assert api.post(f"{path}/cancel").status_code == 200
    wait_until(
        lambda: api.get(path).json()["status"] == "cancelled",
        timeout=10,
        what="the batch to be cancelled",
    )
    for job in jobs_of(database, batch["id"]):
        assert job.status == "cancelled" and job.output  # partial text kept
        assert job.finished_at is not None


def test_metrics_and_the_upstream_key_stays_secret(
    running: Running,
    database: Database,
    redis_url: str,
    redis_prefix: str,
) -> None:
    api = running.api
    requests = _requests(4) + [
        {
            "custom_id": "limited",
            "messages": [{"role": "user", "content": marker(fault="429", times=1, tag="lim")}],
        },
        {
            "custom_id": "refused",
            "messages": [{"role": "user", "content": marker(fault="403", tag="ref")}],
        },
    ]
    batch = api.post("/v1/batches", json={"requests": requests}).json()
    events = list(_events(api, f"/v1/batches/{batch['id']}/events"))
    assert events[-1].json()["counts"] == {
        "queued": 0,
        "running": 0,
        "succeeded": 5,
        "failed": 1,
        "cancelled": 0,
        "expired": 0,
    }
    metrics = httpx.get(api.base_url.join("/metrics")).text
    assert 'aivbatch_jobs{state="succeeded"} 5.0' in metrics
    assert 'aivbatch_batches{state="completed"} 1.0' in metrics
    assert 'aivbatch_upstream_errors_total{kind="rate_limited"} 1.0' in metrics
    assert 'aivbatch_upstream_errors_total{kind="upstream_refused"} 1.0' in metrics
    assert "aivbatch_job_duration_seconds_count 5.0" in metrics
    assert (
        'aivbatch_http_request_duration_seconds_count{method="POST",route="/v1/batches"' in metrics
    )

    # Nowhere: not in an answer, a row, a Redis value or a log line.
    answers = [
        api.get(f"/v1/batches/{batch['id']}").text,
        api.get(f"/v1/batches/{batch['id']}/results").text,
        api.get(f"/v1/batches/{batch['id']}/jobs/refused").text,
        metrics,
    ]
    with database.read() as session:
        rows = [
            repr(row)
            for table in ("batches", "jobs", "files", "api_keys")
            for row in session.execute(text(f"SELECT * FROM {table}"))  # noqa: S608
        ]
    client = redis.Redis.from_url(redis_url)
    values: list[str] = []
    for key in client.scan_iter(match=f"{redis_prefix}:*"):
        kind = client.type(key)
        if kind == b"stream":
            values += [repr(fields) for _id, fields in client.xrange(key) or []]
        elif kind == b"hash":
            values.append(repr(client.hgetall(key)))
    client.close()
    logs = running.logs()
    assert "refused" in json.dumps(api.get(f"/v1/batches/{batch['id']}/jobs/refused").json())
    for place, content in [
        ("answers", answers),
        ("rows", rows),
        ("redis", values),
        ("logs", [logs]),
    ]:
        assert content, place
        assert not any(UPSTREAM_KEY in item for item in content), place
