"""Batches: create one with its jobs in one transaction, read its progress, cancel it."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, func, select, update
from sqlalchemy.orm import Session

from models import counters
from models.bulk import RowWriter
from models.errors import Conflict, InvalidInput, NotFound
from models.paging import newest_first
from models.states import OPEN_BATCH_STATES, BatchStatus, JobStatus
from models.tables import Batch, BatchCounters, Job
from models.usage import USAGE_COLUMNS
from models.webhooks import record_batch_end

_WINDOW = re.compile(r"^([1-9][0-9]{0,8})([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
# Longer windows would keep work (and its Redis keys) around for no one.
MAX_WINDOW = timedelta(days=30)
# The windows parse_window accepts, as one regular expression (for the OpenAPI document).
WINDOW_PATTERN = (
    r"^(([1-9][0-9]{0,5}|1[0-9]{6}|2[0-4][0-9]{5}|25[0-8][0-9]{4}|259[01][0-9]{3}|2592000)s"
    r"|([1-9][0-9]{0,3}|[1-3][0-9]{4}|4[0-2][0-9]{3}|43[01][0-9]{2}|43200)m"
    r"|([1-9][0-9]?|[1-6][0-9]{2}|7[01][0-9]|720)h"
    r"|([1-9]|[12][0-9]|30)d)$"
)
CANCELLED_MESSAGE = "the batch was cancelled before this request ran"
# Jobs are written this many at a time (or once they hold this many bytes of messages),
# so memory stays flat for any batch size.
WRITE_CHUNK = 2000
WRITE_CHUNK_BYTES = 256 * 1024
_jobs: Table = Job.__table__  # type: ignore[assignment]
# The columns each new job row gives, in this order (see BatchWriter.add).
_JOB_COLUMNS = (
    "custom_id",
    "position",
    "model",
    "messages",
    "temperature",
    "system_message",
    "params",
    "upstream",
    "chars_in",
)


@dataclass(frozen=True, slots=True)
class NewJob:
    """One validated request of a batch being created."""

    custom_id: str
    model: str
    messages: list[dict[str, Any]]
    temperature: float | None = None
    system_message: str | None = None
    # Body fields passed through to the upstream as given (models/requests.py).
    params: dict[str, Any] = field(default_factory=dict)
    # The upstream the routing table chose; None leaves the choice to the worker.
    upstream: str | None = None
    # The request's text in characters (messages, input, prompt), when already counted.
    chars_in: int | None = None


@dataclass(slots=True)
class Progress:
    """A batch and how many of its jobs are in each state."""

    batch: Batch
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def finished(self) -> int:
        """Jobs in a terminal state."""
        return self.batch.total - self.counts.get("queued", 0) - self.counts.get("running", 0)


def parse_window(window: str) -> timedelta:
    """A completion window like ``24h``, ``90m`` or ``7d`` as a duration (at most 30 days)."""
    match = _WINDOW.match(window)
    if not match:
        raise InvalidInput(f"completion_window: {window!r} is not a duration like '24h' or '30m'")
    seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds > MAX_WINDOW.total_seconds():
        raise InvalidInput(f"completion_window: {window!r} is longer than {MAX_WINDOW.days}d")
    return timedelta(seconds=seconds)


def new_batch_id() -> str:
    """A fresh batch id."""
    return f"batch_{uuid.uuid4().hex}"


@dataclass(frozen=True, slots=True)
class BatchSpec:
    """A new batch's own fields: everything but its requests."""

    tenant_id: str
    completion_window: str
    now: datetime
    metadata: dict[str, Any] | None = None
    input_file_id: str | None = None
    endpoint: str = "/v1/chat/completions"
    # The batch-level system message: kept once, here, for the jobs that set none.
    system_message: str | None = None


class BatchWriter:
    """Writes a new batch and its jobs as they are validated, in the caller's transaction.

    The batch row goes first (jobs refer to it); jobs follow in chunks of ``WRITE_CHUNK``;
    ``finish`` records how many there are. Nothing is visible to anyone else until the
    transaction commits, and nothing is kept if it rolls back.
    """

    def __init__(self, session: Session, spec: BatchSpec) -> None:
        self.session = session
        self.batch = Batch(
            id=new_batch_id(),
            tenant_id=spec.tenant_id,
            status=BatchStatus.IN_PROGRESS,
            endpoint=spec.endpoint,
            completion_window=spec.completion_window,
            expires_at=spec.now + parse_window(spec.completion_window),
            metadata_=spec.metadata,
            input_file_id=spec.input_file_id,
            system_message=spec.system_message,
            total=0,
            created_at=spec.now,
            in_progress_at=spec.now,
        )
        session.add(self.batch)
        session.flush()
        shared = {
            "batch_id": self.batch.id,
            "status": JobStatus.QUEUED,
            "attempt": 0,
            "not_before": spec.now,
            "created_at": spec.now,
        }
        self.rows = RowWriter(session, _jobs, _JOB_COLUMNS, shared, bound={"messages", "params"})
        self.inherited_chars = len(spec.system_message or "")
        self.pending: list[tuple[Any, ...]] = []
        self.pending_bytes = 0
        self.count = 0
        self.chars_in = 0

    def add(self, job: NewJob, messages_json: str) -> None:
        """Add the next job; ``messages_json`` is its messages as JSON text."""
        if job.chars_in is not None:
            chars_in = job.chars_in
        else:
            chars_in = sum(len(str(m.get("content") or "")) for m in job.messages)
            chars_in += len(job.system_message or "")
        if not job.system_message:
            chars_in += self.inherited_chars
        self.pending.append(
            (
                job.custom_id,
                self.count,
                job.model,
                messages_json,
                job.temperature,
                job.system_message,
                _encode(job.params) if job.params else None,
                job.upstream,
                chars_in,
            )
        )
        self.count += 1
        self.chars_in += chars_in
        self.pending_bytes += len(messages_json)
        if len(self.pending) >= WRITE_CHUNK or self.pending_bytes >= WRITE_CHUNK_BYTES:
            self.flush()

    def abandon(self, error: BaseException) -> None:
        """Stop writing after ``error``; the caller rolls the transaction back."""
        self.rows.close(error)

    def flush(self) -> None:
        """Write the jobs added so far."""
        self.rows.write(self.pending)
        self.pending, self.pending_bytes = [], 0

    def finish(self) -> Batch:
        """Write what is left and record the batch's size; the caller commits."""
        self.flush()
        self.rows.close()
        self.batch.total = self.count
        counters.create(self.session, self.batch.id, queued=self.count, chars_in=self.chars_in)
        return self.batch


# Built once: json.dumps with any option builds a new encoder on every call.
_MESSAGES_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _c_encoder() -> Callable[[Any], str]:
    """The C encoder behind ``_MESSAGES_ENCODER``, made once (its ``encode`` makes one per
    call, most of the cost of a short request's messages); that encoder where there is none.

    Parsed JSON holds no cycles, so the C encoder skips the check for them.
    """
    make: Any = getattr(json.encoder, "c_make_encoder", None)
    try:
        encode = make(
            None,
            _MESSAGES_ENCODER.default,
            json.encoder.encode_basestring,
            None,
            ":",
            ",",
            False,
            False,
            True,
        )
    except TypeError:  # no C encoder, or one this code does not know how to call
        return _MESSAGES_ENCODER.encode
    return lambda value: "".join(encode(value, 0))


_encode = _c_encoder()


def messages_json(messages: list[dict[str, Any]] | dict[str, Any]) -> str:
    """Messages (or passthrough fields) as the JSON text stored for them."""
    return _encode(messages)


def create_batch(
    session: Session,
    *,
    tenant_id: str,
    jobs: Sequence[NewJob],
    completion_window: str,
    now: datetime,
    metadata: dict[str, Any] | None = None,
    input_file_id: str | None = None,
    endpoint: str = "/v1/chat/completions",
) -> Batch:
    """Write a batch and all of its jobs; the caller's transaction makes it all or nothing."""
    if not jobs:
        raise InvalidInput("requests: a batch needs at least one request")
    seen: set[str] = set()
    for line, job in enumerate(jobs, start=1):
        if job.custom_id in seen:
            raise InvalidInput(f"request {line}: custom_id {job.custom_id!r} is used twice")
        seen.add(job.custom_id)
    spec = BatchSpec(
        tenant_id=tenant_id,
        completion_window=completion_window,
        now=now,
        metadata=metadata,
        input_file_id=input_file_id,
        endpoint=endpoint,
    )
    writer = BatchWriter(session, spec)
    for job in jobs:
        writer.add(job, messages_json(job.messages))
    return writer.finish()


def get_batch(session: Session, batch_id: str, tenant_id: str | None) -> Batch:
    """The batch, if it exists and (when a tenant is named) belongs to that tenant."""
    batch = session.get(Batch, batch_id)
    if batch is None or (tenant_id is not None and batch.tenant_id != tenant_id):
        raise NotFound(f"no batch {batch_id!r}")
    return batch


def counts_by_state(session: Session, batch_ids: Collection[str]) -> dict[str, dict[str, int]]:
    """For each batch, how many of its jobs are in each state (every state present, 0 or more)."""
    return counters.counts(session, batch_ids)


def progress(session: Session, batch_id: str, tenant_id: str | None) -> Progress:
    """The batch with its counts by state."""
    batch = get_batch(session, batch_id, tenant_id)
    return Progress(batch, counts_by_state(session, [batch_id])[batch_id])


def list_batches(
    session: Session,
    tenant_id: str,
    *,
    limit: int = 20,
    after: str | None = None,
    status: str | None = None,
) -> list[Batch]:
    """The tenant's batches, newest first, ``limit`` at a time after the batch ``after``."""
    query = select(Batch).where(Batch.tenant_id == tenant_id)
    if status:
        query = query.where(Batch.status == status)
    anchor = get_batch(session, after, tenant_id) if after else None
    page = newest_first(query, Batch.created_at, Batch.id, anchor=anchor, limit=limit)
    return list(session.scalars(page))


def cancel_batch(session: Session, batch_id: str, tenant_id: str | None, *, now: datetime) -> Batch:
    """Cancel: queued jobs end at once; running ones are stopped by their workers.

    The batch itself only becomes ``cancelling`` here; ``finalize`` ends it (and writes its
    webhook event) once no job of it is open.
    """
    batch = get_batch(session, batch_id, tenant_id)
    if batch.status not in (BatchStatus.IN_PROGRESS, BatchStatus.CANCELLING):
        raise Conflict(f"batch {batch_id!r} is {batch.status} and can no longer be cancelled")
    if batch.status == BatchStatus.IN_PROGRESS:
        batch.status = BatchStatus.CANCELLING
        batch.cancelling_at = now
    ended = session.execute(
        update(Job)
        .where(Job.batch_id == batch_id, Job.status == JobStatus.QUEUED)
        .values(
            status=JobStatus.CANCELLED,
            finished_at=now,
            dispatch_token=None,
            error_code="batch_cancelled",
            error_message=CANCELLED_MESSAGE,
        )
        .returning(*counters.ENDED_COLUMNS)
        .execution_options(synchronize_session=False)
    )
    tally = counters.Tally()
    counters.tally_ended(tally, ended, was=JobStatus.QUEUED)
    tally.apply(session)
    return batch


def open_work(session: Session, tenant_id: str) -> tuple[int, int]:
    """How many of the tenant's batches are unfinished, and how many requests they hold."""
    row = session.execute(
        select(func.count(), func.coalesce(func.sum(Batch.total), 0)).where(
            Batch.tenant_id == tenant_id, Batch.status.in_(OPEN_BATCH_STATES)
        )
    ).one()
    return int(row[0]), int(row[1])


def open_batch_ids(session: Session) -> list[str]:
    """Batches that still have work to finish."""
    return list(session.scalars(select(Batch.id).where(Batch.status.in_(OPEN_BATCH_STATES))))


def cancelling_batch_ids(session: Session) -> list[str]:
    """Batches being cancelled: none of their queued jobs may run any more."""
    return list(session.scalars(select(Batch.id).where(Batch.status == BatchStatus.CANCELLING)))


def overdue_batch_ids(session: Session, *, now: datetime) -> list[str]:
    """Open batches whose completion window has ended."""
    return list(
        session.scalars(
            select(Batch.id).where(Batch.status.in_(OPEN_BATCH_STATES), Batch.expires_at <= now)
        )
    )


def finalize(session: Session, *, now: datetime) -> list[tuple[str, str]]:
    """Close every open batch that has no open job left; returns (batch id, final status)."""
    c = BatchCounters
    done_ids = list(
        session.scalars(
            select(Batch.id)
            .join(c, c.batch_id == Batch.id)
            .where(Batch.status.in_(OPEN_BATCH_STATES), c.queued == 0, c.running == 0)
        )
    )
    if not done_ids:
        return []
    closed: list[tuple[str, str]] = []
    usage = counters.usage(session, done_ids)
    for batch_id, counts in counts_by_state(session, done_ids).items():
        batch = session.get(Batch, batch_id)
        assert batch is not None
        if batch.status == BatchStatus.CANCELLING:
            final, stamp = BatchStatus.CANCELLED, "cancelled_at"
        elif counts["expired"]:
            final, stamp = BatchStatus.EXPIRED, "expired_at"
        else:
            final, stamp = BatchStatus.COMPLETED, "completed_at"
        sums = [getattr(usage[batch_id], name) for name in USAGE_COLUMNS]
        done = session.execute(
            update(Batch)
            .where(Batch.id == batch_id, Batch.status == batch.status)
            .values(
                {
                    "status": final,
                    "finalizing_at": now,
                    stamp: now,
                    **dict(zip(USAGE_COLUMNS, sums, strict=True)),
                }
            )
            .execution_options(synchronize_session=False)
        )
        if getattr(done, "rowcount", 0) == 1:
            closed.append((batch_id, str(final)))
            # The outbox: the event is committed with the batch's end, or neither is.
            record_batch_end(
                session, batch_id=batch_id, tenant_id=batch.tenant_id, status=final, now=now
            )
    return closed


def totals_by_state(session: Session) -> tuple[dict[str, int], dict[str, int]]:
    """How many jobs, and how many batches, are in each state (every state present)."""
    batches_ = {str(s): 0 for s in BatchStatus}
    for status, n in session.execute(select(Batch.status, func.count()).group_by(Batch.status)):
        batches_[status] = int(n)
    return counters.totals(session), batches_
