"""Webhook endpoints of a tenant, and the outbox of batch events owed to them.

An event is written by the transaction that ends its batch (``batches.finalize``), with one
delivery row per endpoint subscribed to it: committed together or not at all, so a crash
can neither lose an event nor invent one. Delivering them is models/deliveries.py.
"""

from __future__ import annotations

import base64
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from models.errors import InvalidInput, NotFound
from models.states import BatchStatus
from models.tables import WebhookDelivery, WebhookEndpoint, WebhookEvent

# The event of each way a batch can end (OpenAI's names).
EVENT_OF_STATUS = {
    BatchStatus.COMPLETED: "batch.completed",
    BatchStatus.FAILED: "batch.failed",
    BatchStatus.EXPIRED: "batch.expired",
    BatchStatus.CANCELLED: "batch.cancelled",
}
EVENT_TYPES = tuple(EVENT_OF_STATUS.values())
SECRET_PREFIX = "whsec_"
MAX_ENDPOINTS_PER_TENANT = 16
MAX_DESCRIPTION = 255

PENDING, DELIVERED, FAILED = "pending", "delivered", "failed"


@dataclass(frozen=True, slots=True)
class NewEndpoint:
    """An endpoint just made: the only moment its secret is shown."""

    row: WebhookEndpoint
    secret: str


@dataclass(frozen=True, slots=True)
class Backlog:
    """What an endpoint is still owed: how many events, and when the next try is due."""

    pending: int
    failed: int
    next_attempt_at: datetime | None


def new_secret() -> str:
    """A Standard Webhooks signing secret: ``whsec_`` and 32 random bytes in base64."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def create_endpoint(
    session: Session,
    tenant_id: str,
    *,
    url: str,
    events: list[str] | None,
    description: str,
    now: datetime,
) -> NewEndpoint:
    """Register an endpoint (its URL already checked) for ``events`` (None: every event)."""
    unknown = sorted(set(events or ()) - set(EVENT_TYPES))
    if unknown:
        raise InvalidInput(f"events: unknown {', '.join(unknown)}; known: {', '.join(EVENT_TYPES)}")
    if events is not None and not events:
        raise InvalidInput("events: name at least one event, or leave it out for all")
    if len(description) > MAX_DESCRIPTION:
        raise InvalidInput(f"description: at most {MAX_DESCRIPTION} characters")
    count = session.scalar(
        select(func.count())
        .select_from(WebhookEndpoint)
        .where(WebhookEndpoint.tenant_id == tenant_id)
    )
    if (count or 0) >= MAX_ENDPOINTS_PER_TENANT:
        raise InvalidInput(f"url: a tenant may have at most {MAX_ENDPOINTS_PER_TENANT} endpoints")
    secret = new_secret()
    row = WebhookEndpoint(
        id=f"wh_{uuid.uuid4().hex}",
        tenant_id=tenant_id,
        url=url,
        secret=secret,
        events=sorted(set(events or EVENT_TYPES), key=EVENT_TYPES.index),
        description=description,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return NewEndpoint(row, secret)


def list_endpoints(session: Session, tenant_id: str) -> list[WebhookEndpoint]:
    """The tenant's endpoints, oldest first."""
    return list(
        session.scalars(
            select(WebhookEndpoint)
            .where(WebhookEndpoint.tenant_id == tenant_id)
            .order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
        )
    )


def get_endpoint(session: Session, endpoint_id: str, tenant_id: str) -> WebhookEndpoint:
    """One of the tenant's endpoints."""
    row = session.get(WebhookEndpoint, endpoint_id)
    if row is None or row.tenant_id != tenant_id:
        raise NotFound(f"no webhook endpoint {endpoint_id!r}")
    return row


def delete_endpoint(session: Session, endpoint_id: str, tenant_id: str) -> None:
    """Remove an endpoint; what it was still owed is dropped with it."""
    get_endpoint(session, endpoint_id, tenant_id)
    session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id))
    session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id))


def backlogs(session: Session, endpoint_ids: list[str]) -> dict[str, Backlog]:
    """For each endpoint, its pending and failed deliveries and its next try."""
    result = {eid: Backlog(0, 0, None) for eid in endpoint_ids}
    if not endpoint_ids:
        return result
    rows = session.execute(
        select(
            WebhookDelivery.endpoint_id,
            WebhookDelivery.status,
            func.count(),
            func.min(WebhookDelivery.next_attempt_at),
        )
        .where(
            WebhookDelivery.endpoint_id.in_(endpoint_ids),
            WebhookDelivery.status.in_([PENDING, FAILED]),
        )
        .group_by(WebhookDelivery.endpoint_id, WebhookDelivery.status)
    ).all()
    for endpoint_id, status, count, next_at in rows:
        old = result[endpoint_id]
        if status == PENDING:
            result[endpoint_id] = Backlog(int(count), old.failed, next_at)
        else:
            result[endpoint_id] = Backlog(old.pending, int(count), old.next_attempt_at)
    return result


def record_batch_end(
    session: Session, *, batch_id: str, tenant_id: str, status: str, now: datetime
) -> WebhookEvent | None:
    """Owe the batch's end event to every endpoint of its tenant that wants it.

    Called inside the transaction that ends the batch. Nothing is written when no
    endpoint wants the event.
    """
    event_type = EVENT_OF_STATUS.get(BatchStatus(status))
    if event_type is None:
        return None
    endpoints = [
        e.id
        for e in session.scalars(
            select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == tenant_id)
        )
        if event_type in e.events
    ]
    if not endpoints:
        return None
    event = WebhookEvent(
        id=f"evt_{uuid.uuid4().hex}",
        tenant_id=tenant_id,
        type=event_type,
        batch_id=batch_id,
        created_at=now,
    )
    session.add(event)
    session.flush()
    session.add_all(
        WebhookDelivery(
            event_id=event.id,
            endpoint_id=endpoint_id,
            status=PENDING,
            attempts=0,
            next_attempt_at=now,
            created_at=now,
        )
        for endpoint_id in endpoints
    )
    session.flush()
    return event
