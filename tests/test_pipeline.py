"""The whole pipeline with real processes: SQL, dispatcher, Celery worker, emulator, Redis."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
import redis

from models.db import Database
from models.migrate import upgrade
from models.rediskeys import EV_DONE, EV_ERROR, EV_RETRY, RedisKeys
from tests.support.pipeline import jobs_of, read_stream, submit
from tests.support.stack import Stack
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow


def test_every_job_ends_once_and_redis_joins_to_sql(
    database: Database,
    redis_prefix: str,
    rclient: redis.Redis,
    pipeline: Callable[..., Stack],
) -> None:
    running = pipeline(delay_ms=20, ttfb_ms=20)
    batch_id = submit(database, 200)
    counts = running.wait_for(database, batch_id)
    assert counts["succeeded"] == 200, running.log_text()
    keys = RedisKeys(redis_prefix)
    for job in jobs_of(database, batch_id):
        assert job.status == "succeeded" and job.attempt == 1 and job.output
        assert job.chars_out == len(job.output) and job.first_chunk_ms is not None
        view = read_stream(rclient, keys, batch_id, job.custom_id)
        assert view.text_of(1) == job.output
        assert [e["attempt"] for e in view.events(EV_DONE)] == ["1"]
        assert view.events(EV_ERROR) == [] and view.events(EV_RETRY) == []
    stats = running.emulator.stats()
    assert stats["completed"] == 200 and sum(stats["completed_by_tag"].values()) == 200
    progress = rclient.hgetall(keys.batch_progress(batch_id))
    assert progress[b"succeeded"] == b"200" and progress[b"status"] == b"completed"


def test_a_worker_never_runs_more_streams_than_it_holds(
    database: Database,
    pipeline: Callable[..., Stack],
) -> None:
    # Groups of 16 offered to a worker of 3 streams: they must shrink to fit it.
    running = pipeline(
        settings={"WORKER_STREAMS": "3", "DISPATCH_GROUP": "16"},
        delay_ms=60,
        chunks=10,
    )
    batch_id = submit(database, 12)
    most = 0
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        states = [job.status for job in jobs_of(database, batch_id)]
        most = max(most, states.count("running"))
        if all(s == "succeeded" for s in states):
            break
        time.sleep(0.05)
    assert running.wait_for(database, batch_id)["succeeded"] == 12
    assert 1 <= most <= 3, most


def test_workers_started_before_the_schema_wait_for_it(
    tmp_path: Path, redis_url: str, redis_prefix: str, stack: Callable[..., Stack]
) -> None:
    url = f"sqlite:///{tmp_path / 'later.db'}"
    running = stack(database_url=url, redis_url=redis_url, prefix=redis_prefix, delay_ms=10)

    def waiting() -> bool:
        logs = [log.read_text() for log in running.logs.glob("*.log")]
        return len(logs) == 2 and all("waiting for the database schema" in t for t in logs)

    wait_until(waiting, 60, "the worker and the dispatcher waiting for the schema")
    assert running.dispatcher is not None
    assert all(p.poll() is None for p in [*running.workers, running.dispatcher]), running.log_text()
    upgrade(url)
    db = Database.from_url(url)
    try:
        batch_id = submit(db, 5)
        assert running.wait_for(db, batch_id, timeout=60)["succeeded"] == 5
    finally:
        db.dispose()
