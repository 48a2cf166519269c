"""One attempt at one job: stream its upstream's answer, delta by delta, into Redis."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import httpx

from models.jobs import ClaimedJob, Outcome, Stop
from models.rediskeys import RedisKeys
from models.routing import Routing
from models.settings import Settings
from models.states import JobStatus
from models.types import utcnow
from worker.outcomes import after_error
from worker.providers.errors import UnsupportedModel, UpstreamError
from worker.providers.interface import Final, Provider, Request, TextDelta, ToolCallDelta
from worker.redis_writer import RedisWriter


@dataclass(slots=True)
class Attempt:
    """A job being streamed by this process, with what it received so far."""

    job: ClaimedJob
    # The upstream this attempt runs on, and whose permit it holds (None: no permit).
    upstream: str | None = None
    permit: str | None = None
    parts: list[str] = field(default_factory=list)
    chars: int = 0  # characters received so far
    final: Final | None = None
    started: float = field(default_factory=time.monotonic)
    first_chunk: float | None = None
    stop: Stop | None = None  # set by the monitor before it cancels the stream

    def _timing(self) -> tuple[float | None, float]:
        now = time.monotonic()
        first = None if self.first_chunk is None else (self.first_chunk - self.started) * 1000
        return first, (now - self.started) * 1000

    def _log(self, status: str, **extra: Any) -> list[dict[str, Any]]:
        """The job's attempt log with this attempt's entry added."""
        entry = {"attempt": self.job.attempt, "upstream": self.upstream, "status": status}
        entry.update({k: v for k, v in extra.items() if v is not None})
        return [*(self.job.attempt_log or []), entry]

    def finished(self) -> Outcome:
        """The outcome of a stream that ended normally."""
        output = "".join(self.parts)
        first, total = self._timing()
        final = self.final or Final()
        usage = final.usage
        return Outcome(
            self.job.id,
            self.job.attempt,
            JobStatus.SUCCEEDED,
            output=output,
            chars_out=len(output),
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cached_tokens=usage.cached_tokens,
            reasoning_tokens=usage.reasoning_tokens,
            upstream_status=200,
            first_chunk_ms=first,
            duration_ms=total,
            response=final.body,
            upstream=self.upstream,
            attempt_log=self._log(JobStatus.SUCCEEDED, finish_reason=final.finish_reason),
        )

    def failed(
        self, exc: Exception, settings: Settings, rng: random.Random, routing: Routing
    ) -> Outcome:
        """The outcome of a stream that raised: a retry later (maybe on a fallback upstream),
        or a failure."""
        first, total = self._timing()
        outcome = after_error(
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
        body = exc.body if isinstance(exc, UpstreamError) else None
        log = self._log(
            outcome.status, code=outcome.error_code, status_code=outcome.upstream_status
        )
        upstream = self.upstream
        not_before: datetime | None = outcome.not_before
        if outcome.status == JobStatus.QUEUED:
            upstream = routing.after(self.job.model, self.upstream)
            if upstream != self.upstream:
                not_before = utcnow()  # another upstream: no reason to wait
        return replace(
            outcome, response=body, upstream=upstream, attempt_log=log, not_before=not_before
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
            upstream=self.upstream,
            attempt_log=self._log(self.stop.status, code=self.stop.error_code),
        )


def request_of(job: ClaimedJob, model: str) -> Request:
    """The upstream call of a job, ``model`` being the upstream's name for its model."""
    return Request(
        endpoint=job.endpoint,
        model=model,
        messages=job.messages,
        params=job.params or {},
        temperature=job.temperature,
        system_message=job.system_message,
    )


async def stream(
    attempt: Attempt,
    *,
    routing: Routing,
    providers: dict[str, Provider],
    client: httpx.AsyncClient,
    writer: RedisWriter,
    keys: RedisKeys,
) -> None:
    """Stream the answer into ``attempt`` and the job's Redis stream; raises on failure."""
    job = attempt.job
    route = routing.on(job.upstream, job.model)
    if route is None or route.upstream.name not in providers:
        raise UnsupportedModel(job.model)
    attempt.upstream = route.upstream.name
    key = keys.job_stream(job.batch_id, job.custom_id)
    parts = attempt.parts
    provider = providers[route.upstream.name]
    async for item in provider.stream(request_of(job, route.model), client):
        if attempt.first_chunk is None:
            attempt.first_chunk = time.monotonic()
        if isinstance(item, TextDelta):
            if item.choice == 0:
                parts.append(item.text)
                writer.chunk(key, job.attempt, item.text, attempt.chars)
                attempt.chars += len(item.text)
            else:
                writer.delta(key, job.attempt, item.choice, item.text)
        elif isinstance(item, ToolCallDelta):
            writer.tool_call(
                key,
                job.attempt,
                item.choice,
                item.index,
                item.arguments,
                call_id=item.id,
                name=item.name,
            )
        else:
            attempt.final = item
