"""Delivering the outbox: claim due deliveries, record how each try went, back off.

A claim is a compare-and-set that increments ``attempts`` and pushes ``next_attempt_at``
past the sender's time limit, so a sender that dies mid-try leaves the delivery to be
claimed again once that hold runs out: at least once, always under the event's one id.
A report names the attempt it was for, so a sender whose hold ran out changes nothing.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from models.tables import WebhookDelivery, WebhookEndpoint, WebhookEvent
from models.webhooks import DELIVERED, FAILED, PENDING

# How much of a retry delay is random, so endpoints that failed together do not retry
# together.
JITTER = 0.2
MAX_ERROR = 500


@dataclass(frozen=True, slots=True)
class Due:
    """One try to make: the event, where it goes, and the attempt it is."""

    delivery_id: int
    attempt: int
    event_id: str
    event_type: str
    event_created_at: datetime
    batch_id: str
    endpoint_id: str
    url: str
    secret: str


@dataclass(frozen=True, slots=True)
class Backoff:
    """When failed tries are retried: doubling from ``base`` up to ``ceiling``, within
    ``window`` seconds of the event."""

    base: float
    ceiling: float
    window: float

    def delay(self, attempt: int) -> float:
        """Seconds before the try after ``attempt`` (1 for the first try)."""
        raw = min(self.ceiling, self.base * 2.0 ** min(attempt - 1, 30))
        return raw * (1 - JITTER + 2 * JITTER * random.random())


def any_due(session: Session, *, now: datetime) -> bool:
    """Whether any delivery's try is due (a read, so idle polling takes no write lock)."""
    return (
        session.scalar(
            select(WebhookDelivery.id)
            .where(WebhookDelivery.status == PENDING, WebhookDelivery.next_attempt_at <= now)
            .limit(1)
        )
        is not None
    )


def claim_due(session: Session, limit: int, *, now: datetime, hold_seconds: float) -> list[Due]:
    """Claim up to ``limit`` deliveries whose try is due; held for ``hold_seconds``."""
    if limit <= 0:
        return []
    candidates = session.execute(
        select(WebhookDelivery.id, WebhookDelivery.attempts)
        .where(WebhookDelivery.status == PENDING, WebhookDelivery.next_attempt_at <= now)
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(limit)
    ).all()
    claimed: list[int] = []
    for delivery_id, attempts in candidates:
        done = session.execute(
            update(WebhookDelivery)
            .where(
                WebhookDelivery.id == delivery_id,
                WebhookDelivery.attempts == attempts,
                WebhookDelivery.status == PENDING,
            )
            .values(
                attempts=attempts + 1,
                next_attempt_at=now + timedelta(seconds=hold_seconds),
            )
            .execution_options(synchronize_session=False)
        )
        if getattr(done, "rowcount", 0) == 1:
            claimed.append(delivery_id)
    if not claimed:
        return []
    rows = session.execute(
        select(
            WebhookDelivery.id,
            WebhookDelivery.attempts,
            WebhookEvent.id,
            WebhookEvent.type,
            WebhookEvent.created_at,
            WebhookEvent.batch_id,
            WebhookEndpoint.id,
            WebhookEndpoint.url,
            WebhookEndpoint.secret,
        )
        .join(WebhookEvent, WebhookEvent.id == WebhookDelivery.event_id)
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(WebhookDelivery.id.in_(claimed))
        .order_by(WebhookDelivery.next_attempt_at)
    ).all()
    return [Due(*row) for row in rows]


def record_try(
    session: Session,
    due: Due,
    *,
    status_code: int | None,
    error: str | None,
    now: datetime,
    backoff: Backoff,
) -> str | None:
    """Write how one try went (a 2xx ``status_code`` is a delivery); returns the delivery's
    new status, or None when the try no longer held it."""
    delivered = status_code is not None and 200 <= status_code < 300 and error is None
    values: dict[str, object] = {"last_status_code": status_code, "last_error": _clip(error)}
    if delivered:
        values.update(status=DELIVERED, delivered_at=now)
    else:
        next_at = now + timedelta(seconds=backoff.delay(due.attempt))
        gave_up = next_at > due.event_created_at + timedelta(seconds=backoff.window)
        values.update(status=FAILED if gave_up else PENDING, next_attempt_at=next_at)
    done = session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == due.delivery_id,
            WebhookDelivery.attempts == due.attempt,
            WebhookDelivery.status == PENDING,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    endpoint: dict[str, object] = {
        "last_attempt_at": now,
        "last_status_code": status_code,
        "last_error": _clip(error),
    }
    if delivered:
        endpoint["last_success_at"] = now
    session.execute(
        update(WebhookEndpoint)
        .where(WebhookEndpoint.id == due.endpoint_id)
        .values(**endpoint)
        .execution_options(synchronize_session=False)
    )
    return str(values["status"]) if getattr(done, "rowcount", 0) == 1 else None


def _clip(error: str | None) -> str | None:
    return None if error is None else error[:MAX_ERROR]
