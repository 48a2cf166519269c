"""Live progress over server-sent events, tailing the Redis streams of docs/redis.md.

Redis is a view that may vanish at any moment, so both feeds also watch SQL, the record:
a batch feed ends when SQL says the batch has ended, and a job feed whose stream lost its
end (or never had one) finishes from the stored result.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any

from fastapi.concurrency import run_in_threadpool
from redis.exceptions import RedisError

from api.services import Services
from api.views import present
from models import batches, results
from models.rediskeys import (
    EV_BATCH,
    EV_CHUNK,
    EV_DELTA,
    EV_DONE,
    EV_JOB,
    EV_RETRY,
    EV_TOOL_CALL,
    F_ATTEMPT,
    F_CHOICE,
    F_EVENT,
    F_INDEX,
    F_OFFSET,
    F_TEXT,
    F_TS,
    TERMINAL_EVENTS,
    outcome_entry,
)
from models.states import ENDED_BATCH_STATES, TERMINAL_JOB_STATES, JobStatus
from models.tables import Job

log = logging.getLogger(__name__)

BLOCK_MS = 500
PROGRESS_EVERY = 0.5
SQL_EVERY = 2.0
KEEPALIVE_EVERY = 15.0
# How long a job may be finished in SQL before its stream's missing end is made up from SQL:
# a live worker writes it right after SQL, the dispatcher's repair (worker/repair.py) within
# about six seconds for a worker that died in between.
TERMINAL_GRACE = 8.0
READ_COUNT = 500


def sse(event: str, data: Any, event_id: str | None = None) -> bytes:
    """One server-sent event."""
    head = f"id: {event_id}\n" if event_id else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n".encode()


KEEPALIVE = b": keep-alive\n\n"


def text(value: bytes | str) -> str:
    """A Redis reply value as text."""
    return value.decode() if isinstance(value, bytes) else value


def _decode(fields: Any) -> dict[str, str]:
    return {text(k): text(v) for k, v in fields.items()}


class _Tail:
    """Reads one Redis stream from a cursor; a Redis failure reads as silence."""

    def __init__(self, services: Services, key: str, cursor: str) -> None:
        self.redis = services.redis
        self.key = key
        self.cursor = cursor
        self.last_sent = time.monotonic()

    async def read(self, *, block: bool = True) -> list[tuple[str, dict[str, str]]]:
        try:
            reply: Any = await self.redis.xread(
                {self.key: self.cursor}, count=READ_COUNT, block=BLOCK_MS if block else None
            )
        except (RedisError, OSError) as exc:
            log.debug("redis read failed: %s", exc)
            await asyncio.sleep(BLOCK_MS / 1000)
            return []
        out = [
            (eid.decode(), _decode(fields)) for _key, entries in reply for eid, fields in entries
        ]
        if out:
            self.cursor = out[-1][0]
        return out

    async def exists(self) -> bool:
        try:
            return bool(await self.redis.exists(self.key))
        except (RedisError, OSError):
            return False

    def keepalive_due(self) -> bool:
        now = time.monotonic()
        if now - self.last_sent < KEEPALIVE_EVERY:
            return False
        self.last_sent = now
        return True

    def sent(self) -> None:
        self.last_sent = time.monotonic()


async def latest_id(services: Services, key: str) -> str:
    """The id of a stream's newest entry ("0" when it is empty or Redis is away)."""
    try:
        newest: Any = await services.redis.xrevrange(key, count=1)
    except (RedisError, OSError):
        return "0"
    return text(newest[0][0]) if newest else "0"


@dataclass
class _Progress:
    status: str
    total: int
    counts: dict[str, int]

    def data(self) -> dict[str, Any]:
        return {"status": self.status, "total": self.total, "counts": self.counts}


async def _redis_progress(services: Services, batch_id: str) -> _Progress | None:
    try:
        raw = await services.redis.hgetall(services.keys.batch_progress(batch_id))
    except (RedisError, OSError):
        return None
    if not raw:
        return None
    fields = _decode(raw)
    counts = {str(s): int(fields.get(str(s), 0)) for s in JobStatus}
    return _Progress(fields.get("status", ""), int(fields.get("total", 0)), counts)


def _sql_progress(services: Services, batch_id: str) -> tuple[_Progress, dict[str, Any] | None]:
    """Progress from SQL, and the batch object when the batch has ended."""
    with services.db.read() as session:
        p = batches.progress(session, batch_id, None)
        state = _Progress(str(p.batch.status), p.batch.total, p.counts)
        ended = (
            present(session, [p.batch])[0].model_dump(mode="json")
            if p.batch.status in ENDED_BATCH_STATES
            else None
        )
    return state, ended


async def batch_feed(
    services: Services, batch_id: str, last_event_id: str | None
) -> AsyncGenerator[bytes, None]:
    """Progress, job state changes, then the batch object once it has ended."""
    key = services.keys.batch_events(batch_id)
    tail = _Tail(services, key, last_event_id or await latest_id(services, key))
    progress, ended = await run_in_threadpool(_sql_progress, services, batch_id)
    yield sse("progress", progress.data())
    last_progress_at = last_sql_at = time.monotonic()
    while True:
        batch_event = False
        # Once the batch has ended, what is left in the stream is read without waiting.
        entries = await tail.read(block=ended is None)
        for entry_id, fields in entries:
            if fields.get(F_EVENT) == EV_JOB:
                data: dict[str, Any] = {k: v for k, v in fields.items() if k != F_EVENT}
                data[F_ATTEMPT] = int(data.get(F_ATTEMPT, 0))
                yield sse("job", data, entry_id)
                tail.sent()
            elif fields.get(F_EVENT) == EV_BATCH:
                batch_event = True
        if ended is not None:
            if len(entries) < READ_COUNT:
                break
            continue
        now = time.monotonic()
        if now - last_progress_at >= PROGRESS_EVERY:
            last_progress_at = now
            fresh = await _redis_progress(services, batch_id)
            if fresh is not None and fresh != progress:
                progress = fresh
                yield sse("progress", progress.data())
                tail.sent()
        if batch_event or now - last_sql_at >= SQL_EVERY:
            last_sql_at = now
            from_sql, ended = await run_in_threadpool(_sql_progress, services, batch_id)
            if from_sql != progress or ended is not None:
                progress = from_sql
                yield sse("progress", progress.data())
                tail.sent()
        if tail.keepalive_due():
            yield KEEPALIVE
    yield sse("end", ended)


def _job_now(services: Services, batch_id: str, custom_id: str) -> Job:
    with services.db.read() as session:
        return results.get_job(session, batch_id, custom_id, None)


def _final_from_sql(job: Job) -> tuple[str, dict[str, Any]]:
    """The terminal event of a finished job, as its stream's terminal entry would give it."""
    entry = outcome_entry(
        job.status, job.attempt, chars=job.chars_out, code=job.error_code, message=job.error_message
    )
    return entry[F_EVENT], _chunk_data(entry[F_EVENT], entry)


def _chunk_data(event: str, fields: dict[str, str]) -> dict[str, Any]:
    data: dict[str, Any] = {k: v for k, v in fields.items() if k != F_EVENT}
    data[F_ATTEMPT] = int(data.get(F_ATTEMPT, 0))
    for name in (F_CHOICE, F_INDEX):
        if name in data:
            data[name] = int(data[name])
    if event == EV_DONE and "chars" in data:
        data["chars"] = int(data["chars"])
    if F_OFFSET in data:
        data[F_OFFSET] = int(data[F_OFFSET])
    if F_TS in data and data[F_TS].isdigit():
        data[F_TS] = int(data[F_TS])  # unix milliseconds, a number as documented
    return data


async def job_feed(
    services: Services, batch_id: str, custom_id: str, last_event_id: str | None
) -> AsyncGenerator[bytes, None]:
    """A job's text as it streams, attempt by attempt, then how it ended."""
    tail = _Tail(services, services.keys.job_stream(batch_id, custom_id), last_event_id or "0")
    sent: dict[int, int] = {}  # characters of text sent, by attempt
    done_in_sql_since: float | None = None
    last_sql_at = 0.0
    while True:
        for entry_id, fields in await tail.read():
            event = fields.get(F_EVENT, "")
            data = _chunk_data(event, fields)
            if event == EV_CHUNK and not _advance(data, sent):
                continue
            if event in (EV_CHUNK, EV_DELTA, EV_TOOL_CALL, EV_RETRY, *TERMINAL_EVENTS):
                yield sse(event, data, entry_id)
                tail.sent()
            if event in TERMINAL_EVENTS:
                return
        now = time.monotonic()
        if now - last_sql_at >= 1.0:
            last_sql_at = now
            job = await run_in_threadpool(_job_now, services, batch_id, custom_id)
            if job.status in TERMINAL_JOB_STATES:
                done_in_sql_since = done_in_sql_since or now
                # No stream at all in Redis: no reason to wait for the worker's own entries.
                if now - done_in_sql_since >= TERMINAL_GRACE or not await tail.exists():
                    for chunk in _missing_text(job, sent):
                        yield chunk
                    event, data = _final_from_sql(job)
                    yield sse(event, data)
                    return
        if tail.keepalive_due():
            yield KEEPALIVE


def _advance(data: dict[str, Any], sent: dict[int, int]) -> bool:
    """Count a chunk's text as sent; False when all of it was sent already.

    A stream the dispatcher rewrote from SQL (worker/repair.py) repeats the answer from
    offset 0; only the part this reader has not had is passed on.
    """
    attempt = data[F_ATTEMPT]
    have = sent.get(attempt, 0)
    offset = data.setdefault(F_OFFSET, have)
    text = data.get(F_TEXT, "")
    if offset < have:
        text = text[have - offset :]
        if not text:
            return False
        data[F_TEXT], data[F_OFFSET] = text, have
    sent[attempt] = max(have, data[F_OFFSET] + len(text))
    return True


def _missing_text(job: Job, sent: dict[int, int]) -> list[bytes]:
    """The stored output's part that the reader has not seen in Redis, as one chunk."""
    output = job.output or ""
    already = sent.get(job.attempt, 0)
    rest = output[already:]
    data = {F_ATTEMPT: job.attempt, F_TEXT: rest, F_OFFSET: already}
    return [sse(EV_CHUNK, data)] if rest else []
