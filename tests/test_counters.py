"""Counters kept by each job transition equal a recount of the jobs after every step,
on SQLite and PostgreSQL; reads of a batch file's size need no rendering."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select, update

from models import batches, counters, jobs
from models.db import Database
from models.migrate import downgrade, upgrade
from models.states import JobStatus
from models.tables import Batch, BatchCounters, Job
from models.types import utcnow
from models.usage import Usage
from tests.support.counters import assert_exact, counted


def _submit(db: Database, n: int, *, system: str | None = None) -> str:
    made = [
        batches.NewJob(
            f"r{i}",
            "gpt-3.5-turbo",
            [{"role": "user", "content": f'question «{i}» "quoted"\n'}],
            system_message=system if i % 2 else None,
        )
        for i in range(n)
    ]
    with db.write() as s:
        return batches.create_batch(
            s, tenant_id="t1", jobs=made, completion_window="24h", now=utcnow()
        ).id


def _ids(db: Database, batch_id: str) -> list[int]:
    with db.read() as s:
        return list(s.scalars(select(Job.id).where(Job.batch_id == batch_id).order_by(Job.id)))


def _claim(db: Database, ids: list[int], token: str, lease: float = 30) -> None:
    with db.write() as s:
        jobs.mark_dispatched(s, ids, token, now=utcnow())
        jobs.claim(s, token, now=utcnow(), lease_seconds=lease)
    assert_exact(db)


def test_every_transition_keeps_the_counters_exact(database: Database) -> None:
    batch_id = _submit(database, 10, system="Be brief.")
    assert_exact(database)
    assert counted(database)[batch_id]["queued"] == 10
    ids = _ids(database, batch_id)

    _claim(database, ids[:8], "a")
    later = utcnow() + timedelta(seconds=1)
    outcomes = [
        # An Aivvm answer (no response body), an OpenAI one with tokens, a refusal with its
        # body, a retry, a failure without a body, and a stale attempt that changes nothing.
        jobs.Outcome(ids[0], 1, JobStatus.SUCCEEDED, output='é ✓ "4"', chars_out=7),
        jobs.Outcome(
            ids[1],
            1,
            JobStatus.SUCCEEDED,
            output="4",
            chars_out=1,
            input_tokens=11,
            output_tokens=3,
            cached_tokens=2,
            reasoning_tokens=1,
            response={"id": "chatcmpl-1", "choices": [{"message": {"content": "4"}}], "n": 1.5},
        ),
        jobs.Outcome(
            ids[2],
            1,
            JobStatus.FAILED,
            error_code="upstream_refused",
            error_message="no",
            upstream_status=403,
            response={"error": {"message": "forbidden ✗"}},
        ),
        jobs.Outcome(ids[3], 1, JobStatus.QUEUED, error_code="rate_limited", not_before=later),
        jobs.Outcome(ids[4], 1, JobStatus.FAILED, error_code="internal_error", error_message="x"),
        jobs.Outcome(ids[5], 2, JobStatus.SUCCEEDED, output="stale", chars_out=5),
    ]
    with database.write() as s:
        assert jobs.record_many(s, outcomes, now=utcnow()) == [True] * 5 + [False]
    assert_exact(database)

    # A clean shutdown hands one back; a lost lease requeues one and fails another.
    with database.write() as s:
        assert jobs.release(s, {ids[5]: 1}, now=utcnow()) == 1
    assert_exact(database)
    with database.write() as s:
        s.execute(update(Job).where(Job.id == ids[7]).values(attempt=3))
        lost = utcnow() + timedelta(seconds=60)
        assert jobs.requeue_lost(s, now=lost, max_attempts=3) == 2
    assert_exact(database)
    with database.read() as s:
        assert s.get(Job, ids[7]).status == JobStatus.FAILED  # type: ignore[union-attr]

    # A cancel ends the queued ones; the running one is recorded cancelled by its worker.
    _claim(database, [ids[3]], "b")
    with database.write() as s:
        batches.cancel_batch(s, batch_id, "t1", now=utcnow())
    assert_exact(database)
    stop = jobs.Outcome(
        ids[3], 2, JobStatus.CANCELLED, output="part", chars_out=4, error_code="batch_cancelled"
    )
    with database.write() as s:
        assert jobs.record(s, stop, now=utcnow())
        assert batches.finalize(s, now=utcnow()) == [(batch_id, "cancelled")]
    assert_exact(database)
    with database.read() as s:
        batch = s.get(Batch, batch_id)
        assert batch is not None
        assert Usage.of(batch) == counters.usage(s, [batch_id])[batch_id]
        assert batch.input_tokens == 11 and batch.chars_out == 7 + 1 + 4


def test_expiry_keeps_the_counters_exact(database: Database) -> None:
    batch_id = _submit(database, 6)
    ids = _ids(database, batch_id)
    _claim(database, ids[:2], "a", lease=0.001)
    _claim(database, ids[2:3], "b")
    with database.write() as s:
        ended = jobs.end_open_jobs(
            s,
            [batch_id],
            JobStatus.EXPIRED,
            "batch_expired",
            now=utcnow() + timedelta(seconds=1),
            running_too=True,
        )
    assert ended == 5  # three queued, two whose lease ran out; the live one runs on
    assert_exact(database)
    assert counted(database)[batch_id]["running"] == 1


def test_totals_sum_the_batches(database: Database) -> None:
    first = _submit(database, 3)
    _submit(database, 4)
    _claim(database, _ids(database, first)[:1], "a")
    with database.read() as s:
        jobs_by_state, batches_by_state = batches.totals_by_state(s)
    assert (jobs_by_state["queued"], jobs_by_state["running"]) == (6, 1)
    assert batches_by_state["in_progress"] == 2


def test_the_migration_fills_counters_from_existing_jobs(database_url: str) -> None:
    db = Database.from_url(database_url)
    try:
        batch_id = _submit(db, 4)
        ids = _ids(db, batch_id)
        _claim(db, ids[:2], "a")
        with db.write() as s:
            jobs.record(s, jobs.Outcome(ids[0], 1, JobStatus.SUCCEEDED, output="ok"), now=utcnow())
        before = counted(db)
    finally:
        db.dispose()
    downgrade(database_url, "0005_webhooks")
    upgrade(database_url)
    db = Database.from_url(database_url)
    try:
        after = counted(db)
        # Everything is recounted; the file sizes are unknown until first read.
        assert {k: v for k, v in after[batch_id].items() if not k.endswith("_bytes")} == {
            k: v for k, v in before[batch_id].items() if not k.endswith("_bytes")
        }
        with db.read() as s:
            assert counters.file_bytes(s, batch_id, errors=False) is None
        with db.write() as s:
            counters.keep_file_bytes(s, batch_id, before[batch_id]["output_bytes"], errors=False)
            counters.keep_file_bytes(s, batch_id, 1, errors=False)  # known now: kept as it is
        with db.read() as s:
            row = s.get(BatchCounters, batch_id)
            assert row is not None and row.output_bytes == before[batch_id]["output_bytes"]
    finally:
        db.dispose()


def test_a_job_requeued_after_its_batch_was_cancelled_is_cancelled_too(database: Database) -> None:
    batch_id = _submit(database, 2)
    ids = _ids(database, batch_id)
    _claim(database, ids[:1], "a", lease=0.001)
    with database.write() as s:
        batches.cancel_batch(s, batch_id, "t1", now=utcnow())
        # Its worker died: the lease runs out and the job goes back to the queue.
        assert jobs.requeue_lost(s, now=utcnow() + timedelta(seconds=1), max_attempts=5) == 1
    assert_exact(database)
    with database.write() as s:
        cancelling = batches.cancelling_batch_ids(s)
        assert cancelling == [batch_id]
        ended = jobs.end_open_jobs(
            s,
            cancelling,
            JobStatus.CANCELLED,
            "batch_cancelled",
            now=utcnow(),
            running_too=False,
            error_message=batches.CANCELLED_MESSAGE,
        )
        assert ended == 1
        assert batches.finalize(s, now=utcnow()) == [(batch_id, "cancelled")]
    assert_exact(database)
