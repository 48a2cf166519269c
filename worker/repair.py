"""Writes the terminal entries that no worker wrote, so every stream a reader follows ends.

A worker writes a job's terminal entry right after SQL records the result; a worker killed
between the two leaves a stream without its end, and jobs that a reconciler ends (expired
with their lease run out) have no worker to announce them at all. Each pass looks at the
jobs that finished a few seconds ago and appends, from SQL, the terminal entry of any whose
stream does not already end with that attempt's.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import redis
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.rediskeys import F_ATTEMPT, F_EVENT, TERMINAL_EVENTS, RedisKeys, outcome_entry
from models.tables import Job

# Long enough for a live worker's own write to have landed first.
SETTLE = timedelta(seconds=5)


class TerminalRepair:
    """Remembers how far it has looked; one ``run`` per dispatcher pass."""

    def __init__(self, keys: RedisKeys, *, retention: int, now: datetime) -> None:
        self.keys = keys
        self.retention = retention
        # After a restart, look back over what a dead dispatcher may have missed.
        self.watermark = now - SETTLE * 6

    def run(self, session: Session, client: redis.Redis, *, now: datetime) -> int:
        """Append missing terminal entries; returns how many were written."""
        upto = now - SETTLE
        if upto <= self.watermark:
            return 0
        rows = session.execute(
            select(
                Job.batch_id,
                Job.custom_id,
                Job.attempt,
                Job.status,
                Job.chars_out,
                Job.error_code,
                Job.error_message,
            ).where(
                Job.finished_at > self.watermark,
                Job.finished_at <= upto,
                Job.started_at.is_not(None),
            )
        ).all()
        try:
            written = self._repair(client, rows)
        except (RedisError, OSError):
            return 0  # Redis is away; look at the same window again next pass
        self.watermark = upto
        return written

    def _repair(self, client: redis.Redis, rows: Sequence[Any]) -> int:
        if not rows:
            return 0
        keys = [self.keys.job_stream(r.batch_id, r.custom_id) for r in rows]
        pipe = client.pipeline(transaction=False)
        for key in keys:
            pipe.xrevrange(key, count=1)
        lasts = pipe.execute()
        pipe = client.pipeline(transaction=False)
        written = 0
        for key, row, last in zip(keys, rows, lasts, strict=True):
            _batch, _custom, attempt, status, chars, code, message = row
            if last:
                fields = {k.decode(): v.decode() for k, v in last[0][1].items()}
                if fields.get(F_EVENT) in TERMINAL_EVENTS and fields.get(F_ATTEMPT) == str(attempt):
                    continue
            entry = outcome_entry(status, attempt, chars=chars, code=code, message=message)
            pipe.xadd(key, entry)  # type: ignore[arg-type]
            pipe.expire(key, self.retention)
            written += 1
        if written:
            pipe.execute()
        return written
