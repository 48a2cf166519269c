"""Webhook endpoints of the caller's tenant: register, list (with delivery status), remove."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from api.deps import ServicesDep, TenantDep
from api.openapi import AUTHENTICATED, errors
from api.params import WebhookId
from api.webhook_schemas import (
    CreateWebhook,
    WebhookCreated,
    WebhookDeleted,
    WebhookList,
    WebhookPublic,
    webhook_public,
)
from models import webhooks
from models.types import utcnow
from models.webhook_urls import check_url

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


@router.post(
    "",
    summary="Register a webhook endpoint",
    responses=errors(400, *AUTHENTICATED),
)
async def create(body: CreateWebhook, services: ServicesDep, tenant: TenantDep) -> WebhookCreated:
    """Register a URL to receive batch events, signed with a secret shown only in this answer.

    Only http(s) URLs whose every address is public are accepted, unless the operator set
    `AIVBATCH_WEBHOOK_ALLOW_PRIVATE=true`; the address is checked again at each delivery.
    """
    allow = services.settings.webhook_allow_private
    target = await run_in_threadpool(check_url, body.url, allow_private=allow)

    def write() -> WebhookCreated:
        with services.db.write() as session:
            made = webhooks.create_endpoint(
                session,
                tenant,
                url=target.url,
                events=list(body.events) if body.events is not None else None,
                description=body.description,
                now=utcnow(),
            )
            public = webhook_public(made.row, webhooks.Backlog(0, 0, None))
        return WebhookCreated(**public.model_dump(), secret=made.secret)

    return await run_in_threadpool(write)


@router.get("", summary="List webhook endpoints", responses=errors(*AUTHENTICATED))
def list_(services: ServicesDep, tenant: TenantDep) -> WebhookList:
    """The tenant's endpoints, with how their deliveries are going (never their secrets)."""
    with services.db.read() as session:
        rows = webhooks.list_endpoints(session, tenant)
        backlogs = webhooks.backlogs(session, [r.id for r in rows])
    return WebhookList(data=[webhook_public(r, backlogs[r.id]) for r in rows])


@router.get(
    "/{endpoint_id}",
    summary="Retrieve a webhook endpoint",
    responses=errors(400, 404, *AUTHENTICATED),
)
def retrieve(endpoint_id: WebhookId, services: ServicesDep, tenant: TenantDep) -> WebhookPublic:
    """One endpoint, with how its deliveries are going."""
    with services.db.read() as session:
        row = webhooks.get_endpoint(session, endpoint_id, tenant)
        backlog = webhooks.backlogs(session, [row.id])[row.id]
    return webhook_public(row, backlog)


@router.delete(
    "/{endpoint_id}",
    summary="Remove a webhook endpoint",
    responses=errors(400, 404, *AUTHENTICATED),
)
def delete(endpoint_id: WebhookId, services: ServicesDep, tenant: TenantDep) -> WebhookDeleted:
    """Remove an endpoint; events it was still owed are dropped."""
    with services.db.write() as session:
        webhooks.delete_endpoint(session, endpoint_id, tenant)
    return WebhookDeleted(id=endpoint_id)
