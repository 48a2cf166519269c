"""Request and answer shapes of the webhook routes (docs/api.md, "Webhooks")."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from api.responses import Answer
from api.views import unix
from models.tables import WebhookEndpoint
from models.webhook_urls import MAX_URL
from models.webhooks import MAX_DESCRIPTION, Backlog

EventType = Literal["batch.completed", "batch.failed", "batch.expired", "batch.cancelled"]


class CreateWebhook(BaseModel):
    """A new endpoint: where to post, and which events (all of them when left out)."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(max_length=MAX_URL, description="An http(s) URL on a public address.")
    events: list[EventType] | None = Field(
        default=None, min_length=1, description="The events to send; all when left out."
    )
    description: str = Field(default="", max_length=MAX_DESCRIPTION)


class DeliveryStatus(Answer):
    """How deliveries to an endpoint are going."""

    last_attempt_at: int | None = Field(description="When the latest try was made.")
    last_status_code: int | None = Field(description="The HTTP status of the latest try.")
    last_error: str | None = Field(description="Why the latest try failed, if it did.")
    last_success_at: int | None
    pending: int = Field(description="Events still owed to the endpoint.")
    failed: int = Field(description="Events given up on after a day of tries.")
    next_attempt_at: int | None = Field(description="When the next try is due.")


class WebhookPublic(Answer):
    """A webhook endpoint (its secret is shown only when it is created)."""

    id: str
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    url: str
    events: list[str]
    description: str
    created_at: int
    delivery: DeliveryStatus


class WebhookCreated(WebhookPublic):
    """A new endpoint, with the secret its deliveries are signed with: shown this once."""

    secret: str = Field(description="The Standard Webhooks secret (whsec_…): keep it.")


class WebhookList(Answer):
    """The tenant's endpoints, oldest first."""

    object: Literal["list"] = "list"
    data: list[WebhookPublic]


class WebhookDeleted(Answer):
    """An endpoint removed; what it was still owed is dropped."""

    id: str
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    deleted: Literal[True] = True


def webhook_public(row: WebhookEndpoint, backlog: Backlog) -> WebhookPublic:
    """The answer describing one endpoint."""
    return WebhookPublic(
        id=row.id,
        url=row.url,
        events=list(row.events),
        description=row.description,
        created_at=int(row.created_at.timestamp()),
        delivery=DeliveryStatus(
            last_attempt_at=unix(row.last_attempt_at),
            last_status_code=row.last_status_code,
            last_error=row.last_error,
            last_success_at=unix(row.last_success_at),
            pending=backlog.pending,
            failed=backlog.failed,
            next_attempt_at=unix(backlog.next_attempt_at),
        ),
    )
