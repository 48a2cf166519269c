"""Faults lose nothing and answer nothing twice: a killed worker, a flushed Redis, bad upstream."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

import pytest
import redis

from cli.embedded import EmbeddedRedis
from models.db import Database
from models.rediskeys import EV_DONE, EV_RETRY, RedisKeys
from models.tables import Job
from tests.support.pipeline import jobs_of, read_stream, submit
from tests.support.stack import Stack
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow


def _count(db: Database, batch_id: str, status: str) -> int:
    return sum(1 for j in jobs_of(db, batch_id) if j.status == status)


def _assert_answered_once(job: Job, view_done: list[dict[str, str]]) -> None:
    assert job.status == "succeeded" and job.output, job.custom_id
    assert [e["attempt"] for e in view_done] == [str(job.attempt)], job.custom_id


def test_killed_worker_loses_nothing_and_answers_nothing_twice(
    database: Database,
    redis_prefix: str,
    rclient: redis.Redis,
    pipeline: Callable[..., Stack],
) -> None:
    running = pipeline(
        settings={"WORKER_STREAMS": "50"},
        delay_ms=100,
        ttfb_ms=50,
    )
    batch_id = submit(database, 200)
    wait_until(lambda: _count(database, batch_id, "succeeded") >= 50, 60, "the first waves")
    wait_until(lambda: _count(database, batch_id, "running") >= 20, 30, "a wave in flight")
    running.kill_worker(0)
    running.start_worker()
    counts = running.wait_for(database, batch_id, timeout=90)
    assert counts["succeeded"] == 200, running.log_text()

    keys = RedisKeys(redis_prefix)
    stats = running.emulator.stats()
    done_by_tag = stats["completed_by_tag"]
    jobs = jobs_of(database, batch_id)
    retried = [j for j in jobs if j.attempt > 1]
    assert retried, "the kill interrupted no stream"
    for job in jobs:
        view = read_stream(rclient, keys, batch_id, job.custom_id)
        _assert_answered_once(job, view.events(EV_DONE))
        assert view.text_of(job.attempt) == job.output
        # An attempt that was not interrupted made exactly one upstream call.
        assert done_by_tag[job.custom_id] == 1 or job.attempt > 1, job.custom_id
    # At most the attempts cut by the kill may have completed upstream without being recorded.
    assert 200 <= stats["completed"] <= 200 + len(retried)


def test_flushall_mid_batch_loses_nothing(
    database: Database,
    database_url: str,
    private_redis: str,
    stack: Callable[..., Stack],
) -> None:
    running = stack(
        database_url=database_url,
        redis_url=private_redis,
        prefix="aivflush",
        settings={"WORKER_STREAMS": "50"},
        delay_ms=50,
        ttfb_ms=50,
    )
    batch_id = submit(database, 200)
    wait_until(lambda: _count(database, batch_id, "succeeded") >= 40, 60, "the first waves")
    client = redis.Redis.from_url(private_redis)
    client.flushall()
    counts = running.wait_for(database, batch_id, timeout=90)
    assert counts["succeeded"] == 200, running.log_text()
    # Every stream heals whole: the final attempt's full text, then its terminal entry,
    # also for the jobs that had finished (or were half-way) when Redis lost everything.
    _wait_for_whole_streams(client, RedisKeys("aivflush"), database, batch_id, running)
    client.close()
    assert running.emulator.stats()["completed"] >= 200


def test_a_frozen_redis_mid_batch_leaves_every_stream_whole(
    database: Database, database_url: str, stack: Callable[..., Stack]
) -> None:
    # Frozen longer than the worker's Redis timeout: writes in flight are dropped, so the
    # streams of jobs running meanwhile have holes in the middle, which must not remain.
    with EmbeddedRedis.start() as server:
        running = stack(
            database_url=database_url,
            redis_url=server.url,
            prefix="aivfreeze",
            # Leases outlive a busy machine's slow renewals: this test is about Redis, and a
            # lease lost meanwhile would restart every job (it has its own tests).
            settings={"LEASE_SECONDS": "10"},
            delay_ms=100,
            chunks=40,
        )
        batch_id = submit(database, 20)
        wait_until(lambda: _count(database, batch_id, "running") >= 20, 30, "every job running")
        server.proc.send_signal(signal.SIGSTOP)
        try:
            wait_until(lambda: "Redis is unreachable" in running.log_text(), 20, "a dropped write")
        finally:
            server.proc.send_signal(signal.SIGCONT)
        counts = running.wait_for(database, batch_id, timeout=60)
        assert counts["succeeded"] == 20, running.log_text()
        client = redis.Redis.from_url(server.url)
        _wait_for_whole_streams(client, RedisKeys("aivfreeze"), database, batch_id, running)
        client.close()


def _wait_for_whole_streams(
    client: redis.Redis, keys: RedisKeys, db: Database, batch_id: str, running: Stack
) -> None:
    """Wait until every job's stream holds its final attempt's full text, then its end."""
    finished = jobs_of(db, batch_id)

    def broken() -> list[str]:
        bad = []
        for job in finished:
            view = read_stream(client, keys, batch_id, job.custom_id)
            whole = view.entries and view.entries[-1]["event"] == EV_DONE
            if not whole or view.text_of(job.attempt) != job.output:
                bad.append(job.custom_id)
        return bad

    wait_until(
        lambda: not broken(),
        30,
        "every job stream whole",
        lambda: f"{broken()}\n{running.log_text()}",
    )


def test_upstream_faults_are_retried_and_refusals_fail_once(
    database: Database,
    redis_prefix: str,
    rclient: redis.Redis,
    pipeline: Callable[..., Stack],
) -> None:
    running = pipeline(
        delay_ms=10,
        ttfb_ms=10,
        fault_rate=0.33,
        faults="429,500,reset,stall",
        fault_times=2,
        retry_after=1,
        stall_seconds=30,
    )
    refused: dict[int, dict[str, str | int]] = {i: {"fault": "403"} for i in range(0, 200, 40)}
    batch_id = submit(database, 200, per_job=refused)
    counts = running.wait_for(database, batch_id, timeout=90)
    assert counts["succeeded"] == 195 and counts["failed"] == 5, running.log_text()

    stats = running.emulator.stats()
    assert sum(stats["faulted"].values()) >= 40, stats["faulted"]
    keys = RedisKeys(redis_prefix)
    jobs = jobs_of(database, batch_id)
    for job in jobs:
        view = read_stream(rclient, keys, batch_id, job.custom_id)
        if job.position in refused:
            assert (job.status, job.attempt, job.upstream_status) == ("failed", 1, 403)
            assert job.error_code == "upstream_refused" and job.error_message
            assert stats["started_by_tag"][job.custom_id] == 1
            continue
        _assert_answered_once(job, view.events(EV_DONE))
        assert job.attempt <= 3
        # Readers tell attempts apart: one retry entry per abandoned attempt, then the fresh text.
        assert [e["attempt"] for e in view.events(EV_RETRY)] == [
            str(a) for a in range(1, job.attempt)
        ]
        assert view.text_of(job.attempt) == job.output
    assert any(j.attempt > 1 for j in jobs)


def _streamed(database: Database, client: redis.Redis, keys: RedisKeys, batch_id: str) -> int:
    """How many running jobs have text in their Redis streams."""
    running = [j for j in jobs_of(database, batch_id) if j.status == "running"]
    views = [read_stream(client, keys, batch_id, j.custom_id) for j in running]
    return sum(1 for job, view in zip(running, views, strict=True) if view.text_of(job.attempt))


def test_cancel_stops_running_jobs_and_keeps_their_partial_output(
    database: Database,
    pipeline: Callable[..., Stack],
    rclient: redis.Redis,
    redis_prefix: str,
) -> None:
    from models.batches import cancel_batch
    from models.types import utcnow

    running = pipeline(
        settings={"WORKER_STREAMS": "16"},
        delay_ms=300,
        ttfb_ms=10,
    )
    batch_id = submit(database, 60)
    wait_until(lambda: _count(database, batch_id, "running") > 0, 30, "jobs running")
    keys = RedisKeys(redis_prefix)
    wait_until(
        lambda: _streamed(database, rclient, keys, batch_id) >= 3,
        30,
        "running jobs to stream some text",
    )
    with database.write() as session:
        cancel_batch(session, batch_id, "t1", now=utcnow())
    cancelled_at = time.monotonic()
    wait_until(lambda: _count(database, batch_id, "running") == 0, 10, "running jobs to stop")
    stopped_after = time.monotonic() - cancelled_at
    counts = running.wait_for(database, batch_id, timeout=30)
    assert counts["cancelled"] + counts["succeeded"] == 60 and counts["cancelled"] >= 40
    partial = [j for j in jobs_of(database, batch_id) if j.status == "cancelled" and j.output]
    assert partial, "no running job kept its partial output"
    for job in partial:
        assert job.error_code == "batch_cancelled" and 0 < job.chars_out == len(job.output or "")
    # Generous bound: the workers look every 0.5 s; this is not a speed measurement.
    assert stopped_after < 5, stopped_after


def test_expiry_keeps_finished_work(
    database: Database,
    pipeline: Callable[..., Stack],
) -> None:
    # Answers of about 4 s, 16 at a time: the first wave ends well inside the 10 s window,
    # the fifth could not, whatever the machine's load.
    running = pipeline(
        settings={"WORKER_STREAMS": "16"},
        delay_ms=200,
        ttfb_ms=10,
    )
    running.wait_ready(database)
    batch_id = submit(database, 80, window="10s")
    counts = running.wait_for(database, batch_id, timeout=60)
    assert counts["succeeded"] > 0 and counts["expired"] > 0, counts
    assert counts["succeeded"] + counts["expired"] == 80
    for job in jobs_of(database, batch_id):
        if job.status == "succeeded":
            assert job.output
        else:
            assert job.error_code == "batch_expired"
