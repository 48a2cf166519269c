"""The SQL contract, run against SQLite and PostgreSQL alike: batches, claims, fencing, recovery."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from models import batches, dispatch, jobs
from models.db import Database
from models.errors import Conflict, InvalidInput, NotFound
from models.states import BatchStatus, JobStatus
from models.tables import Batch, Job
from models.types import utcnow


def _new(n: int, prefix: str = "r") -> list[batches.NewJob]:
    return [
        batches.NewJob(f"{prefix}{i}", "gpt-3.5-turbo", [{"role": "user", "content": f"q{i}"}])
        for i in range(n)
    ]


def _submit(db: Database, n: int = 3, *, tenant: str = "t1", window: str = "24h") -> str:
    with db.write() as s:
        return batches.create_batch(
            s, tenant_id=tenant, jobs=_new(n), completion_window=window, now=utcnow()
        ).id


def _dispatch(db: Database, ids: list[int], token: str = "tok") -> None:
    with db.write() as s:
        assert jobs.mark_dispatched(s, ids, token, now=utcnow()) == ids


def _job_ids(db: Database, batch_id: str) -> list[int]:
    with db.read() as s:
        return list(
            s.scalars(select(Job.id).where(Job.batch_id == batch_id).order_by(Job.position))
        )


def _status(db: Database, job_id: int) -> Job:
    with db.read() as s:
        job = s.get(Job, job_id)
        assert job is not None
        return job


def test_batch_and_jobs_are_written_together(database: Database) -> None:
    batch_id = _submit(database, 5)
    with database.read() as s:
        p = batches.progress(s, batch_id, "t1")
    assert p.batch.total == 5 and p.counts["queued"] == 5 and p.finished == 0
    assert p.batch.status == BatchStatus.IN_PROGRESS
    assert p.batch.expires_at - p.batch.created_at == timedelta(hours=24)


def test_duplicate_custom_id_writes_nothing(database: Database) -> None:
    dup = [*_new(2), batches.NewJob("r0", "gpt-4", [{"role": "user", "content": "x"}])]
    with pytest.raises(InvalidInput, match="request 3: custom_id 'r0'"), database.write() as s:
        batches.create_batch(s, tenant_id="t1", jobs=dup, completion_window="24h", now=utcnow())
    with database.read() as s:
        assert s.scalar(select(Batch.id)) is None and s.scalar(select(Job.id)) is None


@pytest.mark.parametrize("window", ["", "24", "0h", "1w", "h"])
def test_bad_completion_window_is_refused(window: str) -> None:
    with pytest.raises(InvalidInput, match="completion_window"):
        batches.parse_window(window)


def test_another_tenants_batch_is_not_found(database: Database) -> None:
    batch_id = _submit(database, 1, tenant="t1")
    with database.read() as s, pytest.raises(NotFound):
        batches.get_batch(s, batch_id, "t2")


def test_claim_takes_only_its_token_and_only_once(database: Database) -> None:
    ids = _job_ids(database, _submit(database, 3))
    _dispatch(database, ids[:2], "a")
    with database.write() as s:
        claimed = jobs.claim(s, "a", now=utcnow(), lease_seconds=30)
    assert sorted(c.id for c in claimed) == ids[:2]
    assert {c.attempt for c in claimed} == {1}
    assert claimed[0].messages[0]["role"] == "user"
    with database.write() as s:
        assert jobs.claim(s, "a", now=utcnow(), lease_seconds=30) == []
        assert jobs.claim(s, "other", now=utcnow(), lease_seconds=30) == []
    assert _status(database, ids[2]).status == JobStatus.QUEUED


def test_a_stale_attempt_changes_nothing(database: Database) -> None:
    job_id = _job_ids(database, _submit(database, 1))[0]
    _dispatch(database, [job_id], "a")
    with database.write() as s:
        jobs.claim(s, "a", now=utcnow(), lease_seconds=0.001)
    # The lease runs out; the reconciler gives the job to a second attempt.
    with database.write() as s:
        assert jobs.requeue_lost(s, now=utcnow() + timedelta(seconds=1), max_attempts=5) == 1
    _dispatch(database, [job_id], "b")
    with database.write() as s:
        (second,) = jobs.claim(s, "b", now=utcnow(), lease_seconds=30)
    assert second.attempt == 2
    stale = jobs.Outcome(job_id, 1, JobStatus.SUCCEEDED, output="stale", chars_out=5)
    fresh = jobs.Outcome(job_id, 2, JobStatus.SUCCEEDED, output="fresh", chars_out=5)
    with database.write() as s:
        assert jobs.record(s, stale, now=utcnow()) is False
        assert jobs.record(s, fresh, now=utcnow()) is True
        assert jobs.record(s, fresh, now=utcnow()) is False  # answered once, never twice
    job = _status(database, job_id)
    assert (job.status, job.output, job.attempt) == (JobStatus.SUCCEEDED, "fresh", 2)


def test_retry_goes_back_to_the_queue_after_not_before(database: Database) -> None:
    job_id = _job_ids(database, _submit(database, 1))[0]
    _dispatch(database, [job_id])
    with database.write() as s:
        jobs.claim(s, "tok", now=utcnow(), lease_seconds=30)
    later = utcnow() + timedelta(seconds=60)
    retry = jobs.Outcome(
        job_id,
        1,
        JobStatus.QUEUED,
        error_code="rate_limited",
        upstream_status=429,
        not_before=later,
    )
    with database.write() as s:
        assert jobs.record(s, retry, now=utcnow())
        assert dispatch.next_jobs(s, 10, now=utcnow()) == []
        assert dispatch.next_jobs(s, 10, now=later) == [job_id]
    job = _status(database, job_id)
    assert (job.status, job.dispatch_token, job.error_code) == (
        JobStatus.QUEUED,
        None,
        "rate_limited",
    )


def test_lost_jobs_fail_after_the_attempt_limit(database: Database) -> None:
    job_id = _job_ids(database, _submit(database, 1))[0]
    for attempt in range(1, 3):
        _dispatch(database, [job_id], f"t{attempt}")
        with database.write() as s:
            jobs.claim(s, f"t{attempt}", now=utcnow(), lease_seconds=0.001)
            jobs.requeue_lost(s, now=utcnow() + timedelta(seconds=1), max_attempts=2)
    job = _status(database, job_id)
    assert (job.status, job.attempt, job.error_code) == (JobStatus.FAILED, 2, "worker_lost")


def test_lost_dispatch_is_sent_again(database: Database) -> None:
    job_id = _job_ids(database, _submit(database, 1))[0]
    _dispatch(database, [job_id])
    with database.write() as s:
        assert jobs.reset_stale_dispatches(s, now=utcnow(), timeout=60) == 0
        assert jobs.reset_stale_dispatches(s, now=utcnow() + timedelta(seconds=61), timeout=60) == 1
        assert jobs.claim(s, "tok", now=utcnow(), lease_seconds=30) == []  # old message: void
        assert dispatch.next_jobs(s, 5, now=utcnow()) == [job_id]


def test_dispatch_shares_capacity_between_batches(database: Database) -> None:
    big = _submit(database, 50)
    small = _submit(database, 2)
    with database.write() as s:
        chosen = dispatch.next_jobs(s, 10, now=utcnow())
    by_batch = {b: [i for i in chosen if i in _job_ids(database, b)] for b in (big, small)}
    assert len(by_batch[small]) == 2 and len(chosen) <= 10
    assert by_batch[big] == _job_ids(database, big)[: len(by_batch[big])]  # input order


def test_in_flight_counts_dispatched_and_running(database: Database) -> None:
    ids = _job_ids(database, _submit(database, 4))
    _dispatch(database, ids[:3])
    with database.write() as s:
        jobs.claim(s, "tok", now=utcnow(), lease_seconds=30)
        _ = jobs.mark_dispatched(s, [ids[3]], "x", now=utcnow())
        assert dispatch.in_flight(s) == 4


def test_cancel_ends_queued_jobs_and_stops_running_ones(database: Database) -> None:
    batch_id = _submit(database, 3)
    ids = _job_ids(database, batch_id)
    _dispatch(database, ids[:1])
    with database.write() as s:
        (running,) = jobs.claim(s, "tok", now=utcnow(), lease_seconds=30)
        batches.cancel_batch(s, batch_id, "t1", now=utcnow())
    with database.read() as s:
        assert batches.counts_by_state(s, [batch_id])[batch_id]["cancelled"] == 2
        stops = jobs.batch_stops(s, [batch_id], now=utcnow())
    assert stops == {batch_id: jobs.Stop(0, JobStatus.CANCELLED, "batch_cancelled")}
    with database.write() as s:
        assert batches.finalize(s, now=utcnow()) == []  # one job still running
        partial = jobs.Outcome(
            running.id, 1, JobStatus.CANCELLED, output="part", error_code="batch_cancelled"
        )
        assert jobs.record(s, partial, now=utcnow())
        assert batches.finalize(s, now=utcnow()) == [(batch_id, "cancelled")]
    assert _status(database, running.id).output == "part"
    with database.write() as s, pytest.raises(Conflict):
        batches.cancel_batch(s, batch_id, "t1", now=utcnow())


def test_expiry_keeps_finished_work(database: Database) -> None:
    batch_id = _submit(database, 3, window="1s")
    ids = _job_ids(database, batch_id)
    _dispatch(database, ids[:1])
    with database.write() as s:
        jobs.claim(s, "tok", now=utcnow(), lease_seconds=30)
        jobs.record(
            s,
            jobs.Outcome(ids[0], 1, JobStatus.SUCCEEDED, output="kept", chars_out=4),
            now=utcnow(),
        )
    later = utcnow() + timedelta(seconds=2)
    with database.write() as s:
        overdue = batches.overdue_batch_ids(s, now=later)
        assert overdue == [batch_id]
        assert (
            jobs.end_open_jobs(
                s, overdue, JobStatus.EXPIRED, "batch_expired", now=later, running_too=True
            )
            == 2
        )
        assert batches.finalize(s, now=later) == [(batch_id, "expired")]
    with database.read() as s:
        p = batches.progress(s, batch_id, None)
    assert p.counts["succeeded"] == 1 and p.counts["expired"] == 2
    assert p.batch.expired_at is not None and p.batch.chars_out == 4
    assert _status(database, ids[0]).output == "kept"


def test_lost_attempts_and_overdue_batches_are_noticed(database: Database) -> None:
    batch_id = _submit(database, 1, window="1s")
    job_id = _job_ids(database, batch_id)[0]
    _dispatch(database, [job_id])
    with database.write() as s:
        jobs.claim(s, "tok", now=utcnow(), lease_seconds=30)
    with database.read() as s:
        assert jobs.lost_attempts(s, {job_id: 1}) == []
        assert jobs.lost_attempts(s, {job_id: 7}) == [job_id]
        assert jobs.batch_stops(s, [batch_id], now=utcnow()) == {}
        later = utcnow() + timedelta(seconds=2)
        assert jobs.batch_stops(s, [batch_id], now=later) == {
            batch_id: jobs.Stop(0, JobStatus.EXPIRED, "batch_expired")
        }


def test_record_many_applies_only_held_attempts(database: Database) -> None:
    ids = _job_ids(database, _submit(database, 3))
    _dispatch(database, ids)
    with database.write() as s:
        jobs.claim(s, "tok", now=utcnow(), lease_seconds=30)
    later = utcnow() + timedelta(seconds=5)
    outcomes = [
        jobs.Outcome(ids[0], 1, JobStatus.SUCCEEDED, output="a", chars_out=1),
        jobs.Outcome(ids[1], 2, JobStatus.SUCCEEDED, output="stale"),
        jobs.Outcome(ids[2], 1, JobStatus.QUEUED, error_code="rate_limited", not_before=later),
    ]
    with database.write() as s:
        assert jobs.record_many(s, outcomes, now=utcnow()) == [True, False, True]
    first, second, third = (_status(database, i) for i in ids)
    assert (first.status, first.output, first.finished_at is not None) == ("succeeded", "a", True)
    assert (second.status, second.output) == ("running", None)
    assert (third.status, third.not_before, third.dispatched_at) == ("queued", later, None)


def test_release_hands_running_jobs_back(database: Database) -> None:
    job_id = _job_ids(database, _submit(database, 1))[0]
    _dispatch(database, [job_id])
    with database.write() as s:
        jobs.claim(s, "tok", now=utcnow(), lease_seconds=30)
        assert jobs.release(s, {job_id: 1}, now=utcnow()) == 1
        assert dispatch.next_jobs(s, 1, now=utcnow()) == [job_id]


def test_completed_batch_sums_usage(database: Database) -> None:
    batch_id = _submit(database, 2)
    ids = _job_ids(database, batch_id)
    _dispatch(database, ids)
    with database.write() as s:
        jobs.claim(s, "tok", now=utcnow(), lease_seconds=30)
        for job_id in ids:
            jobs.record(
                s,
                jobs.Outcome(job_id, 1, JobStatus.SUCCEEDED, output="abc", chars_out=3),
                now=utcnow(),
            )
        assert batches.finalize(s, now=utcnow()) == [(batch_id, "completed")]
    with database.read() as s:
        batch = batches.get_batch(s, batch_id, "t1")
    assert (batch.chars_in, batch.chars_out) == (4, 6)
    assert batch.completed_at is not None


def test_migrations_match_the_models(database: Database) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from models.tables import Base

    with database.engine.connect() as conn:
        assert compare_metadata(MigrationContext.configure(conn), Base.metadata) == []


def test_workers_capacity_counts_only_live_ones(database: Database) -> None:
    now = utcnow()
    with database.write() as s:
        dispatch.heartbeat(s, "w1", hostname="h", pid=1, capacity=100, now=now)
        dispatch.heartbeat(
            s, "w2", hostname="h", pid=2, capacity=50, now=now - timedelta(seconds=60)
        )
        dispatch.heartbeat(s, "w1", hostname="h", pid=1, capacity=120, now=now)
    with database.read() as s:
        assert dispatch.live_capacity(s, now=now, ttl=15) == dispatch.Capacity(1, 120, 120)
    with database.write() as s:
        dispatch.heartbeat(s, "w3", hostname="h", pid=3, capacity=4, now=now)
    with database.read() as s:
        assert dispatch.live_capacity(s, now=now, ttl=15) == dispatch.Capacity(2, 124, 4)


def test_list_batches_pages_newest_first(database: Database) -> None:
    made = [_submit(database, 1) for _ in range(5)]
    _submit(database, 1, tenant="someone-else")
    with database.read() as s:
        first = batches.list_batches(s, "t1", limit=3)
        rest = batches.list_batches(s, "t1", limit=3, after=first[-1].id)
    assert [b.id for b in first + rest] == made[::-1]
