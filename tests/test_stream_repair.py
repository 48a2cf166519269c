"""The dispatcher's repair heals every finished job's Redis stream from SQL (worker/repair.py)."""

from __future__ import annotations

from datetime import timedelta

import redis

from models import jobs
from models.db import Database
from models.rediskeys import RedisKeys, chunk_entry, outcome_entry
from models.states import JobStatus
from models.types import utcnow
from tests.support.pipeline import jobs_of, read_stream, submit
from worker.repair import REBUILD_WINDOW, SETTLE, StreamRepair

ANSWER = "Привет! Всё хорошо, спасибо."


def _finish(db: Database, batch_id: str, *, output: str = ANSWER) -> None:
    """Run every job of the batch to success in SQL, as a worker would."""
    ids = [job.id for job in jobs_of(db, batch_id)]
    with db.write() as s:
        assert jobs.mark_dispatched(s, ids, "tok", now=utcnow()) == ids
        jobs.claim(s, "tok", now=utcnow(), lease_seconds=30)
        for job_id in ids:
            outcome = jobs.Outcome(
                job_id, 1, JobStatus.SUCCEEDED, output=output, chars_out=len(output)
            )
            assert jobs.record(s, outcome, now=utcnow())


def _chunks(text: str, size: int = 5) -> list[dict[str, str]]:
    return [
        chunk_entry(1, text[i : i + size], offset=i, ts_ms=0) for i in range(0, len(text), size)
    ]


DONE = outcome_entry(JobStatus.SUCCEEDED, 1, chars=len(ANSWER), code=None, message=None)


def test_every_kind_of_damage_is_healed_and_whole_streams_are_left_alone(
    database: Database, rclient: redis.Redis, redis_prefix: str
) -> None:
    keys = RedisKeys(redis_prefix)
    batch_id = submit(database, 6)
    _finish(database, batch_id)
    repair = StreamRepair(keys, retention=600, now=utcnow() - timedelta(minutes=1))
    full = _chunks(ANSWER)
    layouts = {
        "j0": [*full, DONE],  # whole: untouched
        "j1": full,  # the worker died before its terminal entry
        "j2": [],  # the stream is gone (evicted)
        "j3": [DONE],  # flushed mid-answer, nothing of the text came after
        "j4": [*full[3:], DONE],  # flushed mid-answer: its opening chunks are gone
        "j5": [*full[:2], *full[3:]],  # a dropped write, then the worker died
    }
    for custom_id, entries in layouts.items():
        for fields in entries:
            rclient.xadd(keys.job_stream(batch_id, custom_id), fields)  # type: ignore[arg-type]
    untouched = rclient.xrange(keys.job_stream(batch_id, "j0"))
    with database.read() as s:
        healed = repair.run(s, rclient, now=utcnow() + SETTLE * 2)
    assert healed == 5
    assert rclient.xrange(keys.job_stream(batch_id, "j0")) == untouched
    for custom_id in layouts:
        view = read_stream(rclient, keys, batch_id, custom_id)
        assert view.text_of(1) == ANSWER, custom_id
        assert view.entries[-1] == DONE, custom_id
    # j1 only lacked its end: its chunks stay, the end is appended.
    assert len(read_stream(rclient, keys, batch_id, "j1").entries) == len(full) + 1
    with database.read() as s:
        assert repair.run(s, rclient, now=utcnow() + SETTLE * 3) == 0


def test_a_whole_stream_ending_in_another_choice_or_a_tool_call_is_left_alone(
    database: Database, rclient: redis.Redis, redis_prefix: str
) -> None:
    keys = RedisKeys(redis_prefix)
    batch_id = submit(database, 2)
    _finish(database, batch_id)
    repair = StreamRepair(keys, retention=600, now=utcnow() - timedelta(minutes=1))
    full = _chunks(ANSWER)
    delta = {"event": "delta", "attempt": "1", "choice": "1", "text": "Other", "ts": "0"}
    call = {"event": "tool_call", "attempt": "1", "choice": "0", "index": "0", "arguments": "{}"}
    layouts = {"j0": [*full, delta, DONE], "j1": [*full[:2], *full[3:], call, DONE]}
    for custom_id, entries in layouts.items():
        for fields in entries:
            rclient.xadd(keys.job_stream(batch_id, custom_id), fields)  # type: ignore[arg-type]
    untouched = rclient.xrange(keys.job_stream(batch_id, "j0"))
    with database.read() as s:
        assert repair.run(s, rclient, now=utcnow() + SETTLE * 2) == 1  # j1 has a hole
    assert rclient.xrange(keys.job_stream(batch_id, "j0")) == untouched
    assert read_stream(rclient, keys, batch_id, "j1").text_of(1) == ANSWER
    with database.read() as s:
        assert repair.run(s, rclient, now=utcnow() + SETTLE * 3) == 0


def test_after_redis_lost_its_data_recent_jobs_are_rebuilt(
    database: Database, rclient: redis.Redis, redis_prefix: str
) -> None:
    keys = RedisKeys(redis_prefix)
    batch_id = submit(database, 3)
    _finish(database, batch_id)
    # A dispatcher that has run for a while: its window is past these jobs already.
    repair = StreamRepair(keys, retention=600, now=utcnow() + REBUILD_WINDOW / 2)
    with database.read() as s:
        repair.run(s, rclient, now=utcnow() + REBUILD_WINDOW / 2)  # sets the epoch
        for job in jobs_of(database, batch_id):
            rclient.delete(keys.job_stream(batch_id, job.custom_id))
        assert repair.run(s, rclient, now=utcnow() + REBUILD_WINDOW / 2) == 0  # epoch kept
        rclient.delete(keys.epoch)  # a FLUSHALL, as far as this prefix is concerned
        assert repair.run(s, rclient, now=utcnow() + REBUILD_WINDOW / 2) == 3
    for job in jobs_of(database, batch_id):
        view = read_stream(rclient, keys, batch_id, job.custom_id)
        assert view.text_of(1) == ANSWER and view.entries[-1] == DONE
