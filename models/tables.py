"""The SQL tables: SQL is the record of what must be done and of every result."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from models.states import BatchStatus, JobStatus
from models.types import BigId, UTCDateTime, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base with a naming convention, so migrations name constraints stably."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON}


class Batch(Base):
    """A batch of chat requests submitted together by one tenant."""

    __tablename__ = "batches"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    status: Mapped[str] = mapped_column(String(16), default=BatchStatus.IN_PROGRESS)
    endpoint: Mapped[str] = mapped_column(String(64), default="/v1/chat/completions")
    completion_window: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[datetime]
    metadata_: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON, default=None)
    input_file_id: Mapped[str | None] = mapped_column(String(64), default=None)
    # The system message of jobs that set none of their own: kept once, not on every job.
    system_message: Mapped[str | None] = mapped_column(Text, default=None)
    total: Mapped[int] = mapped_column(Integer)
    # Usage totals (models/usage.py), copied from its counters when the batch finalizes.
    chars_in: Mapped[int] = mapped_column(BigInteger, default=0)
    chars_out: Mapped[int] = mapped_column(BigInteger, default=0)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cached_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    reasoning_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    # Round-robin cursor of the dispatcher: the batch served longest ago goes first.
    last_dispatched_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    in_progress_at: Mapped[datetime | None] = mapped_column(default=None)
    finalizing_at: Mapped[datetime | None] = mapped_column(default=None)
    completed_at: Mapped[datetime | None] = mapped_column(default=None)
    failed_at: Mapped[datetime | None] = mapped_column(default=None)
    cancelling_at: Mapped[datetime | None] = mapped_column(default=None)
    cancelled_at: Mapped[datetime | None] = mapped_column(default=None)
    expired_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (Index("ix_batches_tenant_created", "tenant_id", "created_at"),)


class Job(Base):
    """One request of a batch, and everything known about its execution."""

    __tablename__ = "jobs"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(ForeignKey("batches.id", ondelete="CASCADE"))
    custom_id: Mapped[str] = mapped_column(String(512))
    position: Mapped[int] = mapped_column(Integer)
    model: Mapped[str] = mapped_column(String(64))
    messages: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    temperature: Mapped[float | None] = mapped_column(Float, default=None)
    system_message: Mapped[str | None] = mapped_column(Text, default=None)
    # Every other body field, passed through to the upstream as given.
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # The upstream of the latest attempt (of the next one, for a job waiting to retry).
    upstream: Mapped[str | None] = mapped_column(String(64), default=None)

    status: Mapped[str] = mapped_column(String(16), default=JobStatus.QUEUED)
    # Incremented by every claim; finishing writes must name it (the fencing token).
    attempt: Mapped[int] = mapped_column(Integer, default=0)
    # Set when the job is handed to the broker; a claim must present it.
    dispatch_token: Mapped[str | None] = mapped_column(String(64), default=None)
    dispatched_at: Mapped[datetime | None] = mapped_column(default=None)
    lease_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    not_before: Mapped[datetime] = mapped_column(default=utcnow)

    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(default=None)
    finished_at: Mapped[datetime | None] = mapped_column(default=None)

    output: Mapped[str | None] = mapped_column(Text, default=None)
    error_code: Mapped[str | None] = mapped_column(String(64), default=None)
    error_message: Mapped[str | None] = mapped_column(Text, default=None)
    upstream_status: Mapped[int | None] = mapped_column(Integer, default=None)
    # The upstream's answer in its own (OpenAI) shape, or its error body; None for Aivvm text.
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    # One entry per recorded attempt: {"attempt", "upstream", "status", "code"?, "status_code"?}.
    attempt_log: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, default=None)
    # Usage (models/usage.py): characters counted here, tokens as the upstream reported them.
    chars_in: Mapped[int] = mapped_column(Integer, default=0)
    chars_out: Mapped[int] = mapped_column(Integer, default=0)
    input_tokens: Mapped[int] = mapped_column(Integer, default=0)
    output_tokens: Mapped[int] = mapped_column(Integer, default=0)
    cached_tokens: Mapped[int] = mapped_column(Integer, default=0)
    reasoning_tokens: Mapped[int] = mapped_column(Integer, default=0)
    first_chunk_ms: Mapped[float | None] = mapped_column(Float, default=None)
    duration_ms: Mapped[float | None] = mapped_column(Float, default=None)

    __table_args__ = (
        UniqueConstraint("batch_id", "custom_id", name="uq_jobs_batch_custom_id"),
        UniqueConstraint("batch_id", "position", name="uq_jobs_batch_position"),
        Index("ix_jobs_batch_status_position", "batch_id", "status", "position"),
        Index("ix_jobs_status_not_before", "status", "not_before"),
        Index("ix_jobs_dispatch_token", "dispatch_token"),
        Index("ix_jobs_status_lease", "status", "lease_expires_at"),
        Index("ix_jobs_finished_at", "finished_at"),
        # The dispatcher's questions, answered without walking a backlog of queued jobs:
        # which jobs are ready (in input order), and which are handed out or running.
        Index(
            "ix_jobs_ready",
            "batch_id",
            "position",
            postgresql_where=text("status = 'queued' AND dispatch_token IS NULL"),
            sqlite_where=text("status = 'queued' AND dispatch_token IS NULL"),
        ),
        Index(
            "ix_jobs_in_flight",
            "upstream",
            "batch_id",
            postgresql_where=text("status = 'running' OR dispatch_token IS NOT NULL"),
            sqlite_where=text("status = 'running' OR dispatch_token IS NOT NULL"),
        ),
    )


class BatchCounters(Base):
    """A batch's jobs by state, what they used, and the sizes of its output and error files.

    Every job transition changes these in its own transaction (models/counters.py), so
    reads never count the jobs. One row per batch: concurrent workers add to it with
    ``n = n + d`` and stay exact.
    """

    __tablename__ = "batch_counters"

    batch_id: Mapped[str] = mapped_column(
        ForeignKey("batches.id", ondelete="CASCADE"), primary_key=True
    )
    queued: Mapped[int] = mapped_column(Integer, default=0)
    running: Mapped[int] = mapped_column(Integer, default=0)
    succeeded: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    cancelled: Mapped[int] = mapped_column(Integer, default=0)
    expired: Mapped[int] = mapped_column(Integer, default=0)
    chars_in: Mapped[int] = mapped_column(BigInteger, default=0)
    chars_out: Mapped[int] = mapped_column(BigInteger, default=0)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cached_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    reasoning_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    # None: not known yet (jobs that ended before counters were kept); counted once on read.
    output_bytes: Mapped[int | None] = mapped_column(BigInteger, default=0)
    error_bytes: Mapped[int | None] = mapped_column(BigInteger, default=0)


class WorkerProcess(Base):
    """A live worker process and how many streams it can hold; the dispatcher sizes to them."""

    __tablename__ = "workers"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    capacity: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    """A bearer key of a tenant; only its SHA-256 is kept."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    name: Mapped[str] = mapped_column(String(255), default="")
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class StoredFile(Base):
    """An uploaded file (OpenAI Files API); batch output files are built from jobs instead."""

    __tablename__ = "files"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    purpose: Mapped[str] = mapped_column(String(32))
    filename: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column("bytes", BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class FilePart(Base):
    """A piece of an uploaded file's content, so no one holds a whole file at once."""

    __tablename__ = "file_parts"

    file_id: Mapped[str] = mapped_column(
        ForeignKey("files.id", ondelete="CASCADE"), primary_key=True
    )
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary)


class WebhookEndpoint(Base):
    """A tenant's webhook receiver: where batch events are posted, signed with its secret."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    # Kept as given (not hashed): every delivery is signed with it.
    secret: Mapped[str] = mapped_column(String(128))
    events: Mapped[list[str]] = mapped_column(JSON)
    description: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The latest attempt to this endpoint, whatever its event, for `GET /v1/webhooks`.
    last_attempt_at: Mapped[datetime | None] = mapped_column(default=None)
    last_status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    last_success_at: Mapped[datetime | None] = mapped_column(default=None)


class WebhookEvent(Base):
    """A batch's end, written in the transaction that ended it (the outbox)."""

    __tablename__ = "webhook_events"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(32))
    batch_id: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    # A batch ends once: a second event for it would be an invented one.
    __table_args__ = (UniqueConstraint("batch_id", name="uq_webhook_events_batch_id"),)


class WebhookDelivery(Base):
    """One event owed to one endpoint: pending until a 2xx, or failed after a day of tries."""

    __tablename__ = "webhook_deliveries"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("webhook_events.id", ondelete="CASCADE"))
    endpoint_id: Mapped[str] = mapped_column(
        ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), default="pending")
    # Incremented by every claim; the sender's report must name it (the fencing token).
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # When the next try is due; while a sender holds it, when its hold runs out.
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_status_code: Mapped[int | None] = mapped_column(Integer, default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(default=None)

    __table_args__ = (
        UniqueConstraint("event_id", "endpoint_id", name="uq_webhook_deliveries_event_endpoint"),
        Index("ix_webhook_deliveries_status_next", "status", "next_attempt_at"),
    )
