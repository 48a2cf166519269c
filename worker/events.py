"""The Redis entries that announce a job's state changes (see models/rediskeys.py)."""

from __future__ import annotations

import time

from models.jobs import ClaimedJob, Outcome
from models.rediskeys import (
    EV_JOB,
    F_ATTEMPT,
    F_CODE,
    F_CUSTOM_ID,
    F_EVENT,
    F_STATUS,
    RedisKeys,
    chunk_entry,
    outcome_entry,
)
from models.states import JobStatus
from worker.redis_writer import RedisWriter


def announce_claim(writer: RedisWriter, keys: RedisKeys, job: ClaimedJob) -> None:
    """A job started running (attempt N)."""
    writer.entry(
        keys.batch_events(job.batch_id),
        {
            F_EVENT: EV_JOB,
            F_CUSTOM_ID: job.custom_id,
            F_STATUS: JobStatus.RUNNING,
            F_ATTEMPT: str(job.attempt),
        },
        capped=True,
    )


def announce_outcome(
    writer: RedisWriter, keys: RedisKeys, job: ClaimedJob, outcome: Outcome
) -> None:
    """An attempt ended: the job stream's terminal (or retry) entry, and a batch event."""
    attempt = str(outcome.attempt)
    entry = outcome_entry(
        outcome.status,
        outcome.attempt,
        chars=outcome.chars_out,
        code=outcome.error_code,
        message=outcome.error_message,
    )
    key = keys.job_stream(job.batch_id, job.custom_id)
    if key in writer.damaged and outcome.status != JobStatus.QUEUED:
        # Some of this stream's writes were dropped (Redis was away): rewrite it whole,
        # so its readers see the answer SQL holds, not one with holes.
        text = outcome.output or ""
        opening = chunk_entry(outcome.attempt, text, offset=0, ts_ms=int(time.time() * 1000))
        writer.rewrite(key, [opening, entry] if text else [entry])
    else:
        writer.entry(key, entry)
    event = {
        F_EVENT: EV_JOB,
        F_CUSTOM_ID: job.custom_id,
        F_STATUS: outcome.status,
        F_ATTEMPT: attempt,
    }
    if outcome.error_code:
        event[F_CODE] = outcome.error_code
    writer.entry(keys.batch_events(job.batch_id), event, capped=True)
    writer.flush_soon()
