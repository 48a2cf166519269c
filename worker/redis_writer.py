"""Coalesced, pipelined writes of stream entries to Redis.

One XADD per network chunk halves throughput (DESIGN.md), so chunks wait here for a few
tens of milliseconds: consecutive chunks of one job's attempt merge into one entry, and
every stream touched in the window is written in one pipeline round trip. Redis is a
view, not the record: when a write fails the entries are dropped and counted, and the
job goes on (its result is in SQL); a stream that lost entries is rewritten whole, from
the attempt's text, when its job ends.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

import redis.asyncio as aioredis
from redis.exceptions import RedisError

from models.rediskeys import (
    EV_CHUNK,
    EV_DELTA,
    EV_TOOL_CALL,
    EVENTS_MAXLEN,
    F_ARGUMENTS,
    F_ATTEMPT,
    F_CHOICE,
    F_EVENT,
    F_ID,
    F_INDEX,
    F_NAME,
    F_TEXT,
    F_TS,
    chunk_entry,
)
from worker.outage import Outage

log = logging.getLogger(__name__)

# While Redis is away, how often the flush loop tries it again.
PROBE_EVERY = 1.0
# The longest one pipeline may take, its round trip included: past it Redis counts as away.
PIPELINE_TIMEOUT = 3.0


@dataclass(slots=True)
class _Pending:
    """Entries waiting for the next flush, by stream key, in arrival order."""

    entries: dict[str, list[dict[str, str]]] = field(default_factory=dict)
    capped: set[str] = field(default_factory=set)
    # Streams to delete before their entries are added (rewritten whole).
    replace: set[str] = field(default_factory=set)
    # Streams whose time to live is set (again) by this flush.
    expire: set[str] = field(default_factory=set)
    # Hash counters, by key then field: integer and float increments.
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    sums: dict[str, dict[str, float]] = field(default_factory=dict)


class RedisWriter:
    """Buffers stream entries and flushes them every ``flush_ms`` in one pipeline."""

    def __init__(
        self,
        client: aioredis.Redis,
        *,
        flush_ms: float,
        retention: int,
        probe_every: float = PROBE_EVERY,
        timeout: float = PIPELINE_TIMEOUT,
    ) -> None:
        self._client = client
        self._timeout = timeout
        self._probe_every = probe_every
        self._interval = flush_ms / 1000
        self._retention = retention
        self._pending = _Pending()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        # One flush at a time: two pipelines in flight could land out of order.
        self._flushing = asyncio.Lock()
        self.dropped = 0
        # Streams that lost entries in a dropped write: rewritten whole when their job ends.
        self.damaged: set[str] = set()
        # Job streams given their time to live by a flush of this attempt: their chunks need
        # no EXPIRE each (half the commands of a flush); the terminal entry sets it afresh.
        self._expiring: set[str] = set()
        self._last_try = 0.0
        self._redis = Outage("Redis", log)
        self.flushes = 0

    def start(self) -> None:
        """Start the flush loop on the running event loop."""
        self._task = asyncio.get_running_loop().create_task(self._run(), name="redis-writer")

    def chunk(self, key: str, attempt: int, text: str, offset: int) -> None:
        """Queue text starting at character ``offset`` of the attempt's answer; merged with
        the previous entry when that is the same attempt's."""
        entries = self._pending.entries.setdefault(key, [])
        last = entries[-1] if entries else None
        if last is not None and last[F_EVENT] == EV_CHUNK and last[F_ATTEMPT] == str(attempt):
            last[F_TEXT] += text
            return
        entries.append(chunk_entry(attempt, text, offset=offset, ts_ms=int(time.time() * 1000)))
        self._expire_once(key)

    def rewrite(self, key: str, entries: list[dict[str, str]]) -> None:
        """Replace a stream whole with ``entries`` at the next flush."""
        self._pending.entries[key] = entries
        self._pending.replace.add(key)
        self._pending.expire.add(key)
        self.damaged.discard(key)

    def delta(self, key: str, attempt: int, choice: int, text: str) -> None:
        """Queue text of a choice other than the first (``event=delta``), merged like chunks."""
        fields = {F_EVENT: EV_DELTA, F_ATTEMPT: str(attempt), F_CHOICE: str(choice)}
        self._merged(key, fields, F_TEXT, text)

    def tool_call(
        self,
        key: str,
        attempt: int,
        choice: int,
        index: int,
        arguments: str,
        *,
        call_id: str | None = None,
        name: str | None = None,
    ) -> None:
        """Queue a piece of a tool call; argument pieces of the same call are merged."""
        fields = {
            F_EVENT: EV_TOOL_CALL,
            F_ATTEMPT: str(attempt),
            F_CHOICE: str(choice),
            F_INDEX: str(index),
        }
        if call_id is not None:
            fields[F_ID] = call_id
        if name is not None:
            fields[F_NAME] = name
        self._merged(key, fields, F_ARGUMENTS, arguments)

    def _merged(self, key: str, fields: dict[str, str], text_field: str, text: str) -> None:
        entries = self._pending.entries.setdefault(key, [])
        last = entries[-1] if entries else None
        # A piece naming a call (id, name) starts an entry; the pieces after it join it.
        if (
            last is not None
            and text_field in last
            and all(last.get(k) == v for k, v in fields.items())
            and set(last) - set(fields) <= {text_field, F_TS, F_ID, F_NAME}
        ):
            last[text_field] += text
            return
        entries.append({**fields, text_field: text, F_TS: str(int(time.time() * 1000))})
        self._expire_once(key)

    def _expire_once(self, key: str) -> None:
        if key not in self._expiring:
            self._expiring.add(key)
            self._pending.expire.add(key)

    def forget(self, key: str) -> None:
        """A job stream's attempt ended (its terminal entry is queued): stop tracking it."""
        self._expiring.discard(key)
        self.damaged.discard(key)

    def entry(self, key: str, fields: dict[str, str], *, capped: bool = False) -> None:
        """Queue one entry as it is (``capped`` streams are trimmed to about EVENTS_MAXLEN)."""
        self._pending.entries.setdefault(key, []).append(fields)
        self._pending.expire.add(key)
        if capped:
            self._pending.capped.add(key)

    def count(self, key: str, counts: dict[str, int], sums: dict[str, float]) -> None:
        """Queue increments of hash fields; they are summed until the next flush."""
        pending_counts = self._pending.counts.setdefault(key, {})
        for name, n in counts.items():
            pending_counts[name] = pending_counts.get(name, 0) + n
        pending_sums = self._pending.sums.setdefault(key, {})
        for name, x in sums.items():
            pending_sums[name] = pending_sums.get(name, 0.0) + x

    def flush_soon(self) -> None:
        """Flush without waiting for the rest of the window (a terminal entry was queued)."""
        self._wake.set()

    async def _run(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._wake.wait(), self._interval)
            except TimeoutError:
                pass
            self._wake.clear()
            await self.flush(probe=True)

    async def flush(self, *, probe: bool = False) -> None:
        """Write everything pending now, in one round trip, after any flush in flight.

        While Redis is away, only the flush loop (``probe``) tries it, at most once every
        PROBE_EVERY seconds; other flushes drop what is pending at once, so nobody waits on
        a server that does not answer (the repair rewrites those streams from SQL).
        """
        async with self._flushing:
            if self._redis.down and not (probe and self._probe_due()):
                self._drop()
                return
            await self._flush()

    def _probe_due(self) -> bool:
        now = time.monotonic()
        if now - self._last_try < self._probe_every:
            return False
        self._last_try = now
        return True

    def _drop(self) -> None:
        self._lost(self._pending)
        self._pending = _Pending()

    def _lost(self, pending: _Pending) -> None:
        self.dropped += sum(len(entries) for entries in pending.entries.values())
        self.damaged.update(key for key in pending.entries if key not in pending.capped)
        # Their EXPIRE was lost with them: the next entry of each sets it.
        self._expiring.difference_update(pending.expire)

    async def _flush(self) -> None:
        pending, self._pending = self._pending, _Pending()
        if not pending.entries and not pending.counts and not pending.sums:
            return
        self._last_try = time.monotonic()
        pipe = self._client.pipeline(transaction=False)
        for key, entries in pending.entries.items():
            if key in pending.replace:
                pipe.delete(key)
            maxlen = EVENTS_MAXLEN if key in pending.capped else None
            for fields in entries:
                pipe.xadd(key, fields, maxlen=maxlen, approximate=True)  # type: ignore[arg-type]
            if key in pending.expire:
                pipe.expire(key, self._retention)
        for key, counts in pending.counts.items():
            for name, n in counts.items():
                pipe.hincrby(key, name, n)
        for key, sums in pending.sums.items():
            for name, x in sums.items():
                pipe.hincrbyfloat(key, name, x)
        try:
            # A timeout here closes the connection mid-reply (redis-py drops a connection
            # whose read is cancelled), so no later pipeline reads this one's replies.
            async with asyncio.timeout(self._timeout):
                await pipe.execute()
            self.flushes += 1
            self._redis.ok()
        except (RedisError, OSError) as exc:
            self._lost(pending)
            self._redis.failed(exc, "writing stream entries (dropped meanwhile: SQL has them)")

    async def close(self, timeout: float) -> None:
        """Stop the loop after a last flush, given at most ``timeout`` seconds."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        try:
            await asyncio.wait_for(self.flush(), max(0.0, timeout))
        except TimeoutError:
            self._drop()
