"""One attempt at one job: stream the provider's answer, chunk by chunk, into Redis."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any, cast

import httpx

from models.jobs import ClaimedJob, Outcome, Stop
from models.rediskeys import RedisKeys
from models.settings import Settings
from models.states import JobStatus
from models.types import utcnow
from worker.outcomes import after_error
from worker.providers.aivvm import Aivvm
from worker.providers.base import Messages
from worker.redis_writer import RedisWriter


@dataclass(slots=True)
class Attempt:
    """A job being streamed by this process, with the text received so far."""

    job: ClaimedJob
    parts: list[str] = field(default_factory=list)
    chars: int = 0  # characters received so far
    started: float = field(default_factory=time.monotonic)
    first_chunk: float | None = None
    stop: Stop | None = None  # set by the monitor before it cancels the stream

    def _timing(self) -> tuple[float | None, float]:
        now = time.monotonic()
        first = None if self.first_chunk is None else (self.first_chunk - self.started) * 1000
        return first, (now - self.started) * 1000

    def finished(self) -> Outcome:
        """The outcome of a stream that ended normally."""
        output = "".join(self.parts)
        first, total = self._timing()
        return Outcome(
            self.job.id,
            self.job.attempt,
            JobStatus.SUCCEEDED,
            output=output,
            chars_out=len(output),
            upstream_status=200,
            first_chunk_ms=first,
            duration_ms=total,
        )

    def failed(self, exc: Exception, settings: Settings, rng: random.Random) -> Outcome:
        """The outcome of a stream that raised: a retry later, or a failure."""
        first, total = self._timing()
        return after_error(
            self.job.id,
            self.job.attempt,
            exc,
            now=utcnow(),
            max_attempts=settings.max_attempts,
            base_delay=settings.retry_base_delay,
            max_delay=settings.retry_max_delay,
            rng=rng,
            first_chunk_ms=first,
            duration_ms=total,
        )

    def stopped(self) -> Outcome | None:
        """The outcome of a stream stopped from outside; None when the attempt is not ours."""
        if self.stop is None or self.stop.status is None:
            return None
        output = "".join(self.parts)
        first, total = self._timing()
        return Outcome(
            self.job.id,
            self.job.attempt,
            self.stop.status,
            output=output,
            chars_out=len(output),
            error_code=self.stop.error_code,
            error_message=f"stopped after {len(output)} characters: {self.stop.error_code}",
            first_chunk_ms=first,
            duration_ms=total,
        )


def provider_kwargs(
    job: ClaimedJob, settings: Settings, client: httpx.AsyncClient
) -> dict[str, Any]:
    """The provider options for a job; absent parameters keep the provider's defaults."""
    kwargs: dict[str, Any] = {"client": client, "key": settings.aivvm_key.get_secret_value()}
    if settings.aivvm_url:
        kwargs["base_url"] = settings.aivvm_url
    if job.temperature is not None:
        kwargs["temperature"] = job.temperature
    if job.system_message is not None:
        kwargs["system_message"] = job.system_message
    return kwargs


async def stream(
    attempt: Attempt,
    *,
    client: httpx.AsyncClient,
    writer: RedisWriter,
    keys: RedisKeys,
    settings: Settings,
) -> None:
    """Stream the answer into ``attempt.parts`` and the job's Redis stream; raises on failure."""
    job = attempt.job
    key = keys.job_stream(job.batch_id, job.custom_id)
    parts = attempt.parts
    generator = Aivvm.create_async_generator(
        job.model, cast(Messages, job.messages), **provider_kwargs(job, settings, client)
    )
    async for text in generator:
        if attempt.first_chunk is None:
            attempt.first_chunk = time.monotonic()
        parts.append(text)
        writer.chunk(key, job.attempt, text, attempt.chars)
        attempt.chars += len(text)
