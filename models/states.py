"""The names of job and batch states, shared by SQL, Redis and the API."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    """Where one request stands: queued → running → a terminal state (or back to queued)."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


OPEN_JOB_STATES = (JobStatus.QUEUED, JobStatus.RUNNING)
# Ended without an answer: what a batch's error file holds.
UNSUCCESSFUL_JOB_STATES = (JobStatus.FAILED, JobStatus.CANCELLED, JobStatus.EXPIRED)
TERMINAL_JOB_STATES = (JobStatus.SUCCEEDED, *UNSUCCESSFUL_JOB_STATES)


class BatchStatus(StrEnum):
    """Where a batch stands; the names are OpenAI's Batch API status names."""

    VALIDATING = "validating"
    IN_PROGRESS = "in_progress"
    FINALIZING = "finalizing"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLING = "cancelling"
    CANCELLED = "cancelled"
    EXPIRED = "expired"


OPEN_BATCH_STATES = (BatchStatus.VALIDATING, BatchStatus.IN_PROGRESS, BatchStatus.CANCELLING)
# A batch in one of these has ended: nothing of it runs any more.
ENDED_BATCH_STATES = (
    BatchStatus.COMPLETED,
    BatchStatus.FAILED,
    BatchStatus.CANCELLED,
    BatchStatus.EXPIRED,
)


# When a batch entered each state (and when its window ends), in the order they happen.
BATCH_TIMESTAMPS = (
    "created_at",
    "in_progress_at",
    "finalizing_at",
    "completed_at",
    "failed_at",
    "expired_at",
    "cancelling_at",
    "cancelled_at",
    "expires_at",
)
