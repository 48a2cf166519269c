"""Helpers for pipeline tests: submit batches straight into SQL and read back what happened."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import redis
from sqlalchemy import select

from models.batches import NewJob, create_batch
from models.db import Database
from models.rediskeys import EV_CHUNK, F_ATTEMPT, F_EVENT, F_TEXT, RedisKeys
from models.tables import Job
from models.types import utcnow
from tests.support.emulator import marker


def submit(
    db: Database,
    n: int,
    *,
    tenant: str = "t1",
    window: str = "24h",
    options: dict[str, str | int] | None = None,
    per_job: Mapping[int, Mapping[str, str | int]] | None = None,
) -> str:
    """Write a batch of ``n`` jobs tagged ``j<i>`` (the emulator counts calls by tag)."""
    made = []
    for i in range(n):
        opts = {**(options or {}), **((per_job or {}).get(i, {})), "tag": f"j{i}"}
        text = f"Question {i}: what is {i} + {i}? {marker(**opts)}"
        made.append(NewJob(f"j{i}", "gpt-3.5-turbo", [{"role": "user", "content": text}]))
    with db.write() as session:
        return create_batch(
            session, tenant_id=tenant, jobs=made, completion_window=window, now=utcnow()
        ).id


def jobs_of(db: Database, batch_id: str) -> list[Job]:
    """The batch's jobs in input order."""
    with db.read() as session:
        return list(
            session.scalars(select(Job).where(Job.batch_id == batch_id).order_by(Job.position))
        )


@dataclass
class StreamView:
    """What a reader of a job's Redis stream sees."""

    entries: list[dict[str, str]]

    def text_of(self, attempt: int) -> str:
        """The chunks of one attempt, joined."""
        return "".join(
            e[F_TEXT]
            for e in self.entries
            if e[F_EVENT] == EV_CHUNK and e[F_ATTEMPT] == str(attempt)
        )

    def events(self, name: str) -> list[dict[str, str]]:
        """The entries of one kind."""
        return [e for e in self.entries if e[F_EVENT] == name]


def read_stream(client: redis.Redis, keys: RedisKeys, batch_id: str, custom_id: str) -> StreamView:
    """Every entry of a job's stream."""
    raw = client.xrange(keys.job_stream(batch_id, custom_id))
    return StreamView(
        [{k.decode(): v.decode() for k, v in fields.items()} for _id, fields in raw]  # type: ignore[union-attr]
    )
