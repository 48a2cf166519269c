"""Heals the Redis view of finished jobs from SQL, so every stream a reader follows ends
with the text SQL holds.

A worker writes a job's chunks as they arrive and its terminal entry right after SQL
records the result. Redis can still lose some of it: a worker killed between the record
and the terminal entry, a Redis restarted or flushed mid-batch (the chunks before it are
gone, those after it are there), an evicted key, writes dropped while Redis was away. And
jobs that a reconciler ends (expired with their lease run out) have no worker to announce
them at all.

Each pass checks the jobs that finished a few seconds ago. A stream is whole when its last
entry is the final attempt's terminal entry and that attempt's chunks cover the answer
from offset 0 to its length. With a terminal entry, the stream's ends tell it (the first
entry, the last two: chunk entries carry their ``offset``); a hole in the middle can only
come from a write the worker dropped, and that worker rewrites the stream itself when the
job ends. Without one, the stream is read whole. A stream that only lacks its terminal
entry gets it appended; any other is rewritten whole: one chunk entry holding the final
attempt's full text from SQL, then the terminal entry.

When the epoch marker is gone (Redis restarted or flushed), jobs finished in the last
REBUILD_WINDOW and every finished job of a still open batch are checked too, a page per pass.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import redis
from redis.exceptions import RedisError
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from models.rediskeys import (
    EV_CHUNK,
    EV_DELTA,
    EV_TOOL_CALL,
    F_ATTEMPT,
    F_EVENT,
    F_OFFSET,
    F_TEXT,
    TERMINAL_EVENTS,
    RedisKeys,
    chunk_entry,
    outcome_entry,
)
from models.states import OPEN_BATCH_STATES, TERMINAL_JOB_STATES
from models.tables import Batch, Job

log = logging.getLogger(__name__)

# Long enough for a live worker's own write to have landed first.
SETTLE = timedelta(seconds=5)
# After Redis lost its data: how far back finished jobs get their streams rewritten.
REBUILD_WINDOW = timedelta(hours=1)
REBUILD_PAGE = 1000

_COLUMNS = (
    Job.id,
    Job.batch_id,
    Job.custom_id,
    Job.attempt,
    Job.status,
    Job.output,
    Job.chars_out,
    Job.error_code,
    Job.error_message,
    Job.finished_at,
)


@dataclass(frozen=True, slots=True)
class _Ends:
    """A stream's first entry and its last two (newest first), decoded."""

    first: dict[str, str] | None
    last: list[dict[str, str]]


def _decode(entries: Any) -> list[dict[str, str]]:
    return [{k.decode(): v.decode() for k, v in fields.items()} for _id, fields in entries]


def _verdict(ends: _Ends, attempt: int, length: int) -> str:
    """From a stream's ends: ``whole``, ``gap``, ``unsure`` (no terminal entry of the
    final attempt: read it all to tell) or ``check`` (ended, but not by the first choice's
    text: read it all to tell)."""
    if not ends.last:
        return "gap"
    newest = ends.last[0]
    mine = str(attempt)
    if not (newest.get(F_EVENT) in TERMINAL_EVENTS and newest.get(F_ATTEMPT) == mine):
        return "unsure"
    if not length:
        return "whole"
    before = ends.last[1] if len(ends.last) > 1 else {}
    if before.get(F_EVENT) in (EV_DELTA, EV_TOOL_CALL) and before.get(F_ATTEMPT) == mine:
        return "check"  # another choice or a tool call came last: read the text to tell
    if not (before.get(F_EVENT) == EV_CHUNK and before.get(F_ATTEMPT) == mine):
        return "gap"  # a terminal entry and none of the answer just before it
    if _offset(before) + len(before.get(F_TEXT, "")) != length:
        return "gap"
    first = ends.first or {}
    if first.get(F_ATTEMPT) == mine and _offset(first) != 0:
        return "gap"  # the attempt's opening chunks are gone (a flush mid-answer)
    # A hole in the middle would come from a dropped write, which the worker that dropped
    # it repairs itself when the job ends (worker/events.py).
    return "whole"


def _offset(fields: dict[str, str]) -> int:
    return int(fields.get(F_OFFSET) or 0)


def _covers(entries: list[dict[str, str]], attempt: int, length: int) -> bool:
    """Whether the attempt's chunks run from offset 0 to ``length`` without a hole."""
    mine, expected = str(attempt), 0
    for fields in entries:
        if fields.get(F_EVENT) != EV_CHUNK or fields.get(F_ATTEMPT) != mine:
            continue
        if _offset(fields) != expected:
            return False
        expected += len(fields.get(F_TEXT, ""))
    return expected == length


class StreamRepair:
    """Remembers how far it has looked; one ``run`` per dispatcher pass."""

    def __init__(self, keys: RedisKeys, *, retention: int, now: datetime) -> None:
        self.keys = keys
        self.retention = retention
        # After a restart, look back over what a dead dispatcher may have missed.
        self.watermark = now - SETTLE * 6
        # While rebuilding after Redis lost its data: the last job id checked, and since when.
        self._rebuild: tuple[int, datetime] | None = None

    def run(self, session: Session, client: redis.Redis, *, now: datetime) -> int:
        """Heal the streams that need it; returns how many were written to."""
        try:
            if client.set(self.keys.epoch, uuid.uuid4().hex, nx=True):
                # Absent: a new Redis (or one that lost its data). Rebuild what is recent.
                self._rebuild = (0, now - REBUILD_WINDOW)
            healed = self._recent(session, client, now=now)
            if self._rebuild is not None:
                healed += self._rebuild_page(session, client)
        except (RedisError, OSError):
            return 0  # Redis is away: the same window is looked at again next pass
        return healed

    def _recent(self, session: Session, client: redis.Redis, *, now: datetime) -> int:
        upto = now - SETTLE
        if upto <= self.watermark:
            return 0
        rows = session.execute(
            select(*_COLUMNS).where(
                Job.finished_at > self.watermark,
                Job.finished_at <= upto,
                Job.started_at.is_not(None),
            )
        ).all()
        healed = self._heal(client, rows)
        self.watermark = upto
        return healed

    def _rebuild_page(self, session: Session, client: redis.Redis) -> int:
        assert self._rebuild is not None
        after, since = self._rebuild
        open_batch = select(Batch.id).where(
            Batch.id == Job.batch_id, Batch.status.in_(OPEN_BATCH_STATES)
        )
        rows = session.execute(
            select(*_COLUMNS)
            .where(
                Job.id > after,
                Job.status.in_([str(s) for s in TERMINAL_JOB_STATES]),
                Job.started_at.is_not(None),
                or_(Job.finished_at >= since, open_batch.exists()),
            )
            .order_by(Job.id)
            .limit(REBUILD_PAGE)
        ).all()
        healed = self._heal(client, rows)
        if len(rows) < REBUILD_PAGE:
            log.info("streams of recently finished jobs checked after Redis lost its data")
            self._rebuild = None
        else:
            self._rebuild = (rows[-1].id, since)
        return healed

    def _heal(self, client: redis.Redis, rows: Sequence[Any]) -> int:
        if not rows:
            return 0
        keys = [self.keys.job_stream(r.batch_id, r.custom_id) for r in rows]
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.xrange(key, count=1)
            pipe.xrevrange(key, count=2)
        replies = pipe.execute()
        verdicts = []
        for i, row in enumerate(rows):
            first, last = _decode(replies[2 * i]), _decode(replies[2 * i + 1])
            ends = _Ends(first[0] if first else None, last)
            verdicts.append(_verdict(ends, row.attempt, len(row.output or "")))
        # Streams without their end (a worker died before writing it) are read whole: their
        # text may be whole (only the end is missing) or have holes (dropped writes).
        unsure = [i for i, v in enumerate(verdicts) if v in ("unsure", "check")]
        if unsure:
            pipe = client.pipeline(transaction=False)
            for i in unsure:
                pipe.xrange(keys[i])
            for i, entries in zip(unsure, pipe.execute(), strict=True):
                row = rows[i]
                whole = _covers(_decode(entries), row.attempt, len(row.output or ""))
                ended = verdicts[i] == "check"
                verdicts[i] = ("whole" if ended else "no_end") if whole else "gap"
        pipe = client.pipeline(transaction=False)
        healed = 0
        for key, row, verdict in zip(keys, rows, verdicts, strict=True):
            if verdict == "whole":
                continue
            if verdict == "gap":
                pipe.delete(key)
                if row.output:
                    ts_ms = int(row.finished_at.timestamp() * 1000) if row.finished_at else 0
                    pipe.xadd(key, chunk_entry(row.attempt, row.output, offset=0, ts_ms=ts_ms))  # type: ignore[arg-type]
            end = outcome_entry(
                row.status,
                row.attempt,
                chars=row.chars_out,
                code=row.error_code,
                message=row.error_message,
            )
            pipe.xadd(key, end)  # type: ignore[arg-type]
            pipe.expire(key, self.retention)
            healed += 1
        if healed:
            pipe.execute()
        return healed
