"""Rewrites each open batch's progress hash in Redis from SQL, the record."""

from __future__ import annotations

import logging
import time
from collections.abc import Collection

import redis
from redis.exceptions import RedisError
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import batches
from models.rediskeys import EV_BATCH, EVENTS_MAXLEN, F_EVENT, F_STATUS, RedisKeys
from models.tables import Batch
from worker.outage import Outage

log = logging.getLogger(__name__)


def publish(
    session: Session,
    client: redis.Redis,
    keys: RedisKeys,
    batch_ids: Collection[str],
    *,
    retention: int,
    outage: Outage,
    finished: Collection[tuple[str, str]] = (),
) -> None:
    """Write the progress hash of each batch, and a batch event for each that finished."""
    ids = set(batch_ids) | {batch_id for batch_id, _ in finished}
    if not ids:
        return
    counts = batches.counts_by_state(session, ids)
    rows = session.execute(select(Batch.id, Batch.status, Batch.total).where(Batch.id.in_(ids)))
    now = str(int(time.time()))
    pipe = client.pipeline(transaction=False)
    for batch_id, status, total in rows:
        fields: dict[str, str | int] = {"status": status, "total": total, "updated_at": now}
        fields.update(counts.get(batch_id, {}))
        key = keys.batch_progress(batch_id)
        pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
        pipe.expire(key, retention)
    for batch_id, status in finished:
        events = keys.batch_events(batch_id)
        fields_ = {F_EVENT: EV_BATCH, F_STATUS: status}
        pipe.xadd(events, fields_, maxlen=EVENTS_MAXLEN, approximate=True)  # type: ignore[arg-type]
        pipe.expire(events, retention)
    try:
        pipe.execute()
        outage.ok()
    except (RedisError, OSError) as exc:
        # Redis is a view of SQL; the next pass writes all of it again.
        outage.failed(exc, "publishing progress")
