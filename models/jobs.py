"""The job state machine: every transition is one compare-and-set UPDATE.

A claim moves ``queued → running`` and increments ``attempt``; every later write by that
worker names the attempt it holds, so a worker whose lease was taken away (it stalled, or
was presumed dead) changes nothing when it finally reports.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    CursorResult,
    String,
    Table,
    and_,
    bindparam,
    case,
    func,
    select,
    update,
)
from sqlalchemy.orm import Session

from models.counters import ENDED_COLUMNS, Tally, tally_ended
from models.lines import Ended
from models.states import BatchStatus, JobStatus
from models.tables import Batch, Job
from models.types import UTCDateTime
from models.usage import USAGE_COLUMNS, Usage


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """What a worker needs to run one attempt of a job."""

    id: int
    batch_id: str
    custom_id: str
    attempt: int
    model: str
    messages: list[dict[str, Any]]
    temperature: float | None
    system_message: str | None
    params: dict[str, Any] | None = None
    upstream: str | None = None
    attempt_log: list[dict[str, Any]] | None = None
    endpoint: str = "/v1/chat/completions"


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt ended, as the worker reports it.

    ``status`` is the job's next state: a terminal state, or ``queued`` for a retry at
    ``not_before``.
    """

    job_id: int
    attempt: int
    status: JobStatus
    output: str | None = None
    error_code: str | None = None
    error_message: str | None = None
    upstream_status: int | None = None
    chars_out: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0
    first_chunk_ms: float | None = None
    duration_ms: float | None = None
    not_before: datetime | None = None
    # The upstream's answer (or error body); the upstream of the next attempt (a retry) or of
    # this one; every recorded attempt so far, this one included.
    response: dict[str, Any] | None = None
    upstream: str | None = None
    attempt_log: list[dict[str, Any]] | None = None


def _rowcount(result: Any) -> int:
    assert isinstance(result, CursorResult)
    return int(result.rowcount)


_batch_system_message = (
    select(Batch.system_message).where(Batch.id == Job.batch_id).scalar_subquery()
)


def dispatched(session: Session, token: str) -> list[tuple[int, str, str | None]]:
    """The still-queued jobs dispatched under ``token``: (id, model, upstream)."""
    rows = session.execute(
        select(Job.id, Job.model, Job.upstream).where(
            Job.dispatch_token == token, Job.status == JobStatus.QUEUED
        )
    )
    return [(int(i), str(m), u) for i, m, u in rows]


def defer(session: Session, token: str, until: dict[int, datetime]) -> int:
    """Hand dispatched jobs back undispatched, not before ``until`` (their upstream is full
    or paused); no attempt is spent."""
    deferred = 0
    for job_id, not_before in until.items():
        stmt = (
            update(Job)
            .where(Job.id == job_id, Job.dispatch_token == token, Job.status == JobStatus.QUEUED)
            .values(dispatch_token=None, dispatched_at=None, not_before=not_before)
            .execution_options(synchronize_session=False)
        )
        deferred += _rowcount(session.execute(stmt))
    return deferred


def claim(
    session: Session,
    token: str,
    *,
    now: datetime,
    lease_seconds: float,
    only: Collection[int] | None = None,
) -> list[ClaimedJob]:
    """Claim every still-queued job dispatched under ``token`` (of ``only``, when given);
    the rest are someone else's."""
    if only is not None and not only:
        return []
    condition = and_(Job.dispatch_token == token, Job.status == JobStatus.QUEUED)
    if only is not None:
        condition = and_(condition, Job.id.in_(list(only)))
    stmt = (
        update(Job)
        .where(condition)
        .values(
            status=JobStatus.RUNNING,
            attempt=Job.attempt + 1,
            dispatch_token=None,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            started_at=func.coalesce(Job.started_at, now),
        )
        .returning(
            Job.id,
            Job.batch_id,
            Job.custom_id,
            Job.attempt,
            Job.model,
            Job.messages,
            Job.temperature,
            # A job without a system message of its own takes its batch's.
            func.coalesce(Job.system_message, _batch_system_message).label("system_message"),
            Job.params,
            Job.upstream,
            Job.attempt_log,
        )
        .execution_options(synchronize_session=False)
    )
    rows = [row._asdict() for row in session.execute(stmt)]
    if not rows:
        return []
    tally = Tally()
    for row in rows:
        tally.move(row["batch_id"], JobStatus.QUEUED, JobStatus.RUNNING)
    tally.apply(session)
    batch_ids = {row["batch_id"] for row in rows}
    endpoints = dict(
        session.execute(select(Batch.id, Batch.endpoint).where(Batch.id.in_(batch_ids))).all()
    )
    return [ClaimedJob(**row, endpoint=endpoints[row["batch_id"]]) for row in rows]


def renew_leases(
    session: Session, held: dict[int, int], *, now: datetime, lease_seconds: float
) -> int:
    """Extend the leases of the running jobs this worker holds (job id → attempt)."""
    if not held:
        return 0
    until = now + timedelta(seconds=lease_seconds)
    stmt = (
        update(Job)
        .where(Job.id.in_(list(held)), Job.status == JobStatus.RUNNING)
        .values(lease_expires_at=until)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(session.execute(stmt))


_jobs: Table = Job.__table__  # type: ignore[assignment]
# One statement for every outcome, run as an executemany: a batch of outcomes costs one
# round trip. ``dispatched_at`` is cleared only for a retry, which is dispatched anew.
_RECORD = (
    update(_jobs)
    .where(
        _jobs.c.id == bindparam("b_id"),
        _jobs.c.attempt == bindparam("b_attempt"),
        _jobs.c.status == JobStatus.RUNNING,
    )
    .values(
        status=bindparam("b_status"),
        lease_expires_at=None,
        dispatch_token=None,
        dispatched_at=case(
            (bindparam("b_status") == JobStatus.QUEUED, None), else_=_jobs.c.dispatched_at
        ),
        not_before=func.coalesce(
            bindparam("b_not_before", type_=UTCDateTime()), _jobs.c.not_before
        ),
        finished_at=bindparam("b_finished_at", type_=UTCDateTime()),
        output=bindparam("b_output"),
        chars_out=bindparam("b_chars_out"),
        input_tokens=bindparam("b_input_tokens"),
        output_tokens=bindparam("b_output_tokens"),
        cached_tokens=bindparam("b_cached_tokens"),
        reasoning_tokens=bindparam("b_reasoning_tokens"),
        error_code=bindparam("b_error_code"),
        error_message=bindparam("b_error_message"),
        upstream_status=bindparam("b_upstream_status"),
        response=bindparam("b_response", type_=JSON(none_as_null=True)),
        upstream=func.coalesce(bindparam("b_upstream", type_=String()), _jobs.c.upstream),
        attempt_log=func.coalesce(
            bindparam("b_attempt_log", type_=JSON(none_as_null=True)), _jobs.c.attempt_log
        ),
        first_chunk_ms=bindparam("b_first_chunk_ms"),
        duration_ms=bindparam("b_duration_ms"),
    )
)


def _record_params(outcome: Outcome, now: datetime) -> dict[str, Any]:
    retry = outcome.status == JobStatus.QUEUED
    return {
        "b_id": outcome.job_id,
        "b_attempt": outcome.attempt,
        "b_status": str(outcome.status),
        "b_not_before": (outcome.not_before or now) if retry else None,
        "b_finished_at": None if retry else now,
        "b_output": None if retry else outcome.output,
        "b_chars_out": 0 if retry else outcome.chars_out,
        "b_input_tokens": 0 if retry else outcome.input_tokens,
        "b_output_tokens": 0 if retry else outcome.output_tokens,
        "b_cached_tokens": 0 if retry else outcome.cached_tokens,
        "b_reasoning_tokens": 0 if retry else outcome.reasoning_tokens,
        "b_error_code": outcome.error_code,
        "b_error_message": outcome.error_message,
        "b_upstream_status": outcome.upstream_status,
        "b_response": None if retry else outcome.response,
        "b_upstream": outcome.upstream,
        "b_attempt_log": outcome.attempt_log,
        "b_first_chunk_ms": outcome.first_chunk_ms,
        "b_duration_ms": outcome.duration_ms,
    }


def record_many(session: Session, outcomes: Sequence[Outcome], *, now: datetime) -> list[bool]:
    """Write how attempts ended; for each, False when that attempt no longer held the job.

    The still-held attempts are read first, with the rows locked (the write transaction
    holds SQLite's lock; PostgreSQL takes row locks), so the update that follows applies to
    exactly those.
    """
    if not outcomes:
        return []
    query = select(*_HELD_COLUMNS).where(
        Job.id.in_([o.job_id for o in outcomes]), Job.status == JobStatus.RUNNING
    )
    if session.get_bind().dialect.name != "sqlite":
        query = query.with_for_update()
    held = {row.id: row for row in session.execute(query)}
    applied: list[bool] = []
    params: list[dict[str, Any]] = []
    tally = Tally()
    for outcome in outcomes:
        row = held.pop(outcome.job_id, None)
        ok = row is not None and row.attempt == outcome.attempt
        applied.append(ok)
        if ok:
            values = _record_params(outcome, now)
            params.append(values)
            _tally_record(tally, row, values)
    if params:
        session.connection().execute(_RECORD, params)
        tally.apply(session)
    return applied


# Read (and locked) before an outcome is recorded: whether the attempt still holds the job,
# and what its counters and its output line need that the outcome does not carry.
_HELD_COLUMNS = (
    Job.id,
    Job.attempt,
    Job.batch_id,
    Job.custom_id,
    Job.position,
    Job.model,
    *(getattr(Job, name) for name in USAGE_COLUMNS),
)


def _tally_record(tally: Tally, row: Any, values: dict[str, Any]) -> None:
    """What recording one outcome (``values``: its _RECORD parameters) moves in counters."""
    status = values["b_status"]
    tally.move(row.batch_id, JobStatus.RUNNING, status)
    after = {name: values.get(f"b_{name}", getattr(row, name)) for name in USAGE_COLUMNS}
    tally.usage(row.batch_id, Usage.of(row), Usage(**after))
    if status != JobStatus.QUEUED:
        tally.ended(
            Ended(
                batch_id=row.batch_id,
                custom_id=row.custom_id,
                position=row.position,
                status=status,
                model=row.model,
                output=values["b_output"],
                response=values["b_response"],
                upstream_status=values["b_upstream_status"],
                error_code=values["b_error_code"],
                error_message=values["b_error_message"],
                chars_in=row.chars_in,
                chars_out=values["b_chars_out"],
                finished_at=values["b_finished_at"],
            )
        )


def record(session: Session, outcome: Outcome, *, now: datetime) -> bool:
    """Write how one attempt ended; False when the attempt no longer holds the job."""
    return record_many(session, [outcome], now=now)[0]


def release(session: Session, held: dict[int, int], *, now: datetime) -> int:
    """Give running jobs back to the queue at once (a worker shutting down cleanly)."""
    tally = Tally()
    released = 0
    for job_id, attempt in held.items():
        stmt = (
            update(Job)
            .where(Job.id == job_id, Job.attempt == attempt, Job.status == JobStatus.RUNNING)
            .values(
                status=JobStatus.QUEUED,
                lease_expires_at=None,
                dispatch_token=None,
                dispatched_at=None,
                not_before=now,
            )
            .returning(Job.batch_id)
            .execution_options(synchronize_session=False)
        )
        for batch_id in session.scalars(stmt):
            tally.move(batch_id, JobStatus.RUNNING, JobStatus.QUEUED)
            released += 1
    tally.apply(session)
    return released


@dataclass(frozen=True, slots=True)
class Stop:
    """Why a worker must stop an attempt it is streaming."""

    job_id: int
    status: JobStatus | None  # the state to record, or None: the attempt is no longer ours
    error_code: str


def batch_stops(session: Session, batch_ids: Collection[str], *, now: datetime) -> dict[str, Stop]:
    """Of these batches, those whose running jobs must stop: cancelled, or past their window."""
    if not batch_ids:
        return {}
    rows = session.execute(
        select(Batch.id, Batch.status, Batch.expires_at).where(Batch.id.in_(list(batch_ids)))
    )
    stops: dict[str, Stop] = {}
    for batch_id, status, expires_at in rows:
        if status == BatchStatus.CANCELLING:
            stops[batch_id] = Stop(0, JobStatus.CANCELLED, "batch_cancelled")
        elif expires_at <= now:
            stops[batch_id] = Stop(0, JobStatus.EXPIRED, "batch_expired")
    return stops


def lost_attempts(session: Session, held: dict[int, int]) -> list[int]:
    """Of the held attempts (job id → attempt), those that no longer hold their job."""
    if not held:
        return []
    rows = session.execute(select(Job.id, Job.attempt, Job.status).where(Job.id.in_(list(held))))
    still = {
        job_id
        for job_id, attempt, status in rows
        if status == JobStatus.RUNNING and attempt == held[job_id]
    }
    return [job_id for job_id in held if job_id not in still]


def requeue_lost(session: Session, *, now: datetime, max_attempts: int) -> int:
    """Running jobs whose lease ran out (their worker died): back to the queue, or failed."""
    lost = and_(Job.status == JobStatus.RUNNING, Job.lease_expires_at < now)
    tally = Tally()
    failed = session.execute(
        update(Job)
        .where(lost, Job.attempt >= max_attempts)
        .values(
            status=JobStatus.FAILED,
            lease_expires_at=None,
            finished_at=now,
            error_code="worker_lost",
            error_message=f"the worker running it stopped answering {max_attempts} times",
        )
        .returning(*ENDED_COLUMNS)
        .execution_options(synchronize_session=False)
    )
    n = tally_ended(tally, failed, was=JobStatus.RUNNING)
    requeued = session.scalars(
        update(Job)
        .where(lost)
        .values(status=JobStatus.QUEUED, lease_expires_at=None, not_before=now)
        .returning(Job.batch_id)
        .execution_options(synchronize_session=False)
    )
    for batch_id in requeued:
        tally.move(batch_id, JobStatus.RUNNING, JobStatus.QUEUED)
        n += 1
    tally.apply(session)
    return n


def reset_stale_dispatches(session: Session, *, now: datetime, timeout: float) -> int:
    """Queued jobs handed to the broker but never claimed (message lost): dispatch again."""
    stmt = (
        update(Job)
        .where(
            Job.status == JobStatus.QUEUED,
            Job.dispatch_token.is_not(None),
            Job.dispatched_at < now - timedelta(seconds=timeout),
        )
        .values(dispatch_token=None, dispatched_at=None)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(session.execute(stmt))


def undispatch(session: Session, tokens: Collection[str]) -> int:
    """Queued jobs handed to a worker that stops before starting them: dispatch them again."""
    if not tokens:
        return 0
    stmt = (
        update(Job)
        .where(Job.dispatch_token.in_(list(tokens)), Job.status == JobStatus.QUEUED)
        .values(dispatch_token=None, dispatched_at=None)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(session.execute(stmt))


def end_open_jobs(
    session: Session,
    batch_ids: Collection[str],
    status: JobStatus,
    error_code: str,
    *,
    now: datetime,
    running_too: bool,
    error_message: str | None = None,
) -> int:
    """End the queued jobs of these batches (and running ones whose lease ran out, if asked);
    ``error_message``, when given, replaces the message a former attempt left."""
    if not batch_ids:
        return 0
    which = {JobStatus.QUEUED: Job.status == JobStatus.QUEUED}
    if running_too:
        which[JobStatus.RUNNING] = and_(Job.status == JobStatus.RUNNING, Job.lease_expires_at < now)
    tally = Tally()
    ended = 0
    # One statement per former state, so the counters know what each job left.
    for was, condition in which.items():
        stmt = (
            update(Job)
            .where(Job.batch_id.in_(list(batch_ids)), condition)
            .values(
                status=status,
                finished_at=now,
                lease_expires_at=None,
                dispatch_token=None,
                error_code=error_code,
                **({} if error_message is None else {"error_message": error_message}),
            )
            .returning(*ENDED_COLUMNS)
            .execution_options(synchronize_session=False)
        )
        ended += tally_ended(tally, session.execute(stmt), was=was)
    tally.apply(session)
    return ended


def mark_dispatched(
    session: Session, ids: Iterable[int], token: str, *, now: datetime
) -> list[int]:
    """Hand queued jobs to the broker under ``token``; returns the ids that were still free."""
    stmt = (
        update(Job)
        .where(Job.id.in_(list(ids)), Job.status == JobStatus.QUEUED, Job.dispatch_token.is_(None))
        .values(dispatch_token=token, dispatched_at=now)
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    )
    return [row[0] for row in session.execute(stmt)]


def mark_dispatched_groups(
    session: Session, groups: Sequence[Sequence[int]], *, now: datetime
) -> list[tuple[str, list[int]]]:
    """Hand groups of queued jobs to the broker, each under a fresh token, in one statement
    (a pass hands out dozens); returns each token with its ids that were still free."""
    tokens = [uuid.uuid4().hex for _ in groups]
    token_of = {job_id: token for token, ids in zip(tokens, groups, strict=True) for job_id in ids}
    if not token_of:
        return []
    stmt = (
        update(Job)
        .where(
            Job.id.in_(list(token_of)),
            Job.status == JobStatus.QUEUED,
            Job.dispatch_token.is_(None),
        )
        .values(dispatch_token=case(token_of, value=Job.id), dispatched_at=now)
        .returning(Job.id)
        .execution_options(synchronize_session=False)
    )
    marked = set(session.scalars(stmt))
    pairs = zip(tokens, groups, strict=True)
    kept = [(token, [i for i in ids if i in marked]) for token, ids in pairs]
    return [(token, ids) for token, ids in kept if ids]
