"""The webhook outbox in SQL, on SQLite and PostgreSQL: written with the batch's end or not
at all, once per batch, claimed and reported under a fencing attempt, given up after a day."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from models import batches, deliveries, webhooks
from models.db import Database
from models.states import BatchStatus
from models.tables import Batch, WebhookDelivery, WebhookEvent
from models.types import utcnow

BACKOFF = deliveries.Backoff(base=10, ceiling=40, window=60)


def _endpoint(db: Database, tenant: str, events: list[str] | None = None) -> str:
    with db.write() as s:
        return webhooks.create_endpoint(
            s, tenant, url="http://hook.test/", events=events, description="", now=utcnow()
        ).row.id


def _cancelled_batch(db: Database, tenant: str) -> str:
    """A batch whose jobs have all ended (cancelled while queued), waiting to be finalized."""
    with db.write() as s:
        job = batches.NewJob("a", "gpt-3.5-turbo", [{"role": "user", "content": "hi"}])
        batch_id = batches.create_batch(
            s, tenant_id=tenant, jobs=[job], completion_window="1h", now=utcnow()
        ).id
    with db.write() as s:
        batches.cancel_batch(s, batch_id, tenant, now=utcnow())
    return batch_id


def _count(db: Database, table: type[WebhookEvent] | type[WebhookDelivery]) -> int:
    with db.read() as s:
        return int(s.scalar(select(func.count()).select_from(table)) or 0)


def test_the_event_is_written_with_the_batch_end_or_not_at_all(database: Database) -> None:
    wanted = _endpoint(database, "t1", ["batch.cancelled"])
    _endpoint(database, "t1", ["batch.completed"])  # another event: owed nothing
    _endpoint(database, "t2")  # another tenant: owed nothing
    batch_id = _cancelled_batch(database, "t1")

    class Crash(Exception):
        pass

    with pytest.raises(Crash), database.write() as s:
        assert batches.finalize(s, now=utcnow()) == [(batch_id, "cancelled")]
        raise Crash  # the process dies before the commit
    with database.read() as s:
        assert s.get(Batch, batch_id).status == BatchStatus.CANCELLING  # type: ignore[union-attr]
    assert _count(database, WebhookEvent) == 0 and _count(database, WebhookDelivery) == 0

    with database.write() as s:
        assert batches.finalize(s, now=utcnow()) == [(batch_id, "cancelled")]
    with database.write() as s:
        assert batches.finalize(s, now=utcnow()) == []  # ended once, so one event
    with database.read() as s:
        [event] = s.scalars(select(WebhookEvent)).all()
        [delivery] = s.scalars(select(WebhookDelivery)).all()
    assert (event.type, event.batch_id, event.tenant_id) == ("batch.cancelled", batch_id, "t1")
    assert (delivery.endpoint_id, delivery.status, delivery.attempts) == (wanted, "pending", 0)


def test_no_endpoint_no_event(database: Database) -> None:
    batch_id = _cancelled_batch(database, "t1")
    with database.write() as s:
        assert batches.finalize(s, now=utcnow()) == [(batch_id, "cancelled")]
    assert _count(database, WebhookEvent) == 0


def test_a_try_is_claimed_once_reported_once_and_given_up_after_the_window(
    database: Database,
) -> None:
    _endpoint(database, "t1")
    _cancelled_batch(database, "t1")
    start = utcnow()
    with database.write() as s:
        batches.finalize(s, now=start)
    with database.write() as s:
        [due] = deliveries.claim_due(s, 10, now=start, hold_seconds=30)
        assert deliveries.claim_due(s, 10, now=start, hold_seconds=30) == []  # held
    assert due.attempt == 1 and due.event_type == "batch.cancelled"

    # The hold runs out (the sender died): claimed again, and the first sender's late
    # report changes nothing.
    later = start + timedelta(seconds=45)
    with database.write() as s:
        [again] = deliveries.claim_due(s, 10, now=later, hold_seconds=30)
        assert again.attempt == 2 and again.event_id == due.event_id
        assert (
            deliveries.record_try(s, due, status_code=200, error=None, now=later, backoff=BACKOFF)
            is None
        )
        failed = deliveries.record_try(
            s, again, status_code=500, error="HTTP 500", now=later, backoff=BACKOFF
        )
    assert failed == "failed"  # the next try would fall past the 60 s window: given up
    with database.read() as s:
        row = s.scalars(select(WebhookDelivery)).one()
        backlog = webhooks.backlogs(s, [row.endpoint_id])[row.endpoint_id]
    assert (row.status, row.last_status_code, row.last_error) == ("failed", 500, "HTTP 500")
    assert (backlog.pending, backlog.failed) == (0, 1)


def test_backoff_doubles_up_to_its_ceiling() -> None:
    for attempt, expected in ((1, 10), (2, 20), (3, 40), (9, 40)):
        delay = BACKOFF.delay(attempt)
        assert expected * 0.8 <= delay <= expected * 1.2
