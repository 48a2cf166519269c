"""Turn how an attempt ended into the job's next state: done, retry later, or failed."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

from models.jobs import Outcome
from models.states import JobStatus
from worker.providers.errors import ProviderError, RateLimited, StreamInterrupted, UpstreamError

INTERNAL_MESSAGE = "the worker failed on this request; its operator's log has the details"


def backoff_seconds(attempt: int, *, base: float, ceiling: float, rng: random.Random) -> float:
    """Exponential backoff with full jitter: uniform in [0, min(ceiling, base·2^(attempt-1))]."""
    return rng.uniform(0, min(ceiling, base * 2 ** max(0, attempt - 1)))


def after_error(
    job_id: int,
    attempt: int,
    exc: Exception,
    *,
    now: datetime,
    max_attempts: int,
    base_delay: float,
    max_delay: float,
    rng: random.Random,
    first_chunk_ms: float | None,
    duration_ms: float | None,
) -> Outcome:
    """The outcome of an attempt that raised ``exc``."""
    if isinstance(exc, ProviderError):
        code, message = exc.code, str(exc) or type(exc).__name__
    else:
        # Our own failure: its text may hold internals, so the tenant sees only this.
        code, message = "internal_error", INTERNAL_MESSAGE
    status_code = exc.status_code if isinstance(exc, UpstreamError) else None
    retryable = isinstance(exc, UpstreamError) and exc.retryable
    if isinstance(exc, StreamInterrupted):
        message = f"{message} (after {exc.received_chars} characters)"
    if not retryable or attempt >= max_attempts:
        if retryable:
            message = f"gave up after {attempt} attempts: {message}"
        return Outcome(
            job_id,
            attempt,
            JobStatus.FAILED,
            error_code=code,
            error_message=message,
            upstream_status=status_code,
            first_chunk_ms=first_chunk_ms,
            duration_ms=duration_ms,
        )
    delay = backoff_seconds(attempt, base=base_delay, ceiling=max_delay, rng=rng)
    if isinstance(exc, RateLimited) and exc.retry_after is not None:
        delay = max(delay, exc.retry_after)
    return Outcome(
        job_id,
        attempt,
        JobStatus.QUEUED,
        error_code=code,
        error_message=message,
        upstream_status=status_code,
        not_before=now + timedelta(seconds=delay),
        first_chunk_ms=first_chunk_ms,
        duration_ms=duration_ms,
    )
