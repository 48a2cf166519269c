"""The Redis entries that announce a job's state changes (see models/rediskeys.py)."""

from __future__ import annotations

from models.jobs import ClaimedJob, Outcome
from models.rediskeys import (
    EV_DONE,
    EV_ERROR,
    EV_JOB,
    EV_RETRY,
    F_ATTEMPT,
    F_CHARS,
    F_CODE,
    F_CUSTOM_ID,
    F_EVENT,
    F_MESSAGE,
    F_STATUS,
    RedisKeys,
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


def outcome_entry(
    status: str, attempt: int, *, chars: int, code: str | None, message: str | None
) -> dict[str, str]:
    """A job stream's entry for how an attempt ended: terminal, or a retry."""
    if status == JobStatus.SUCCEEDED:
        entry = {F_EVENT: EV_DONE, F_STATUS: status, F_CHARS: str(chars)}
    else:
        entry = {
            F_EVENT: EV_RETRY if status == JobStatus.QUEUED else EV_ERROR,
            F_STATUS: status,
            F_CODE: code or "",
            F_MESSAGE: message or "",
        }
    entry[F_ATTEMPT] = str(attempt)
    return entry


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
    writer.entry(keys.job_stream(job.batch_id, job.custom_id), entry)
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
