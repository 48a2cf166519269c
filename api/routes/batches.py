"""Batches: create (inline or from an uploaded file), list, read, cancel."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from api.batch_input import Limits, parse_inline, parse_jsonl
from api.deps import ServicesDep, TenantDep
from api.errors import ApiError
from api.schemas import CreateBatch
from api.services import Services
from api.views import list_object, present
from models import batches, files
from models.batches import NewJob
from models.requests import DEFAULT_MODEL, Defaults
from models.states import BatchStatus
from models.types import utcnow

router = APIRouter(prefix="/v1/batches", tags=["batches"])


def present_one(services: Services, batch_id: str, tenant: str) -> dict[str, Any]:
    """The batch object of one of the tenant's batches."""
    with services.db.read() as session:
        return present(session, [batches.get_batch(session, batch_id, tenant)])[0]


def _requests(body: CreateBatch, services: Services, tenant: str) -> list[NewJob]:
    settings = services.settings
    defaults = Defaults(
        model=body.model or DEFAULT_MODEL,
        temperature=body.temperature,
        system_message=body.system_message,
    )
    limits = Limits(settings.max_requests_per_batch, settings.max_request_bytes)
    if (body.requests is None) == (body.input_file_id is None):
        raise ApiError("give either requests (inline) or input_file_id", param="requests")
    if body.requests is not None:
        return parse_inline(body.requests, defaults, limits)
    assert body.input_file_id is not None
    with services.db.read() as session:
        row = files.get_file(session, body.input_file_id, tenant, with_content=True)
        if row.purpose != "batch":
            raise ApiError(
                f"file {row.id!r} has purpose {row.purpose!r}, not 'batch'",
                param="input_file_id",
            )
        content = row.content
    return parse_jsonl(content, defaults, limits)


@router.post("", summary="Create a batch")
def create(body: CreateBatch, services: ServicesDep, tenant: TenantDep) -> dict[str, Any]:
    """Create a batch from inline `requests` or an uploaded `input_file_id`.

    Every request is checked before anything is written; the answer names each bad one.
    The batch and all its requests are written in one transaction, and queued at once.
    """
    jobs = _requests(body, services, tenant)
    window = body.completion_window or services.settings.default_completion_window
    batches.parse_window(window)
    with services.db.write() as session:
        batch = batches.create_batch(
            session,
            tenant_id=tenant,
            jobs=jobs,
            completion_window=window,
            now=utcnow(),
            metadata=body.metadata,
            input_file_id=body.input_file_id,
            endpoint=body.endpoint,
        )
        return present(session, [batch])[0]


@router.get("", summary="List batches")
def list_(
    services: ServicesDep,
    tenant: TenantDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: Annotated[str | None, Query(description="The last batch id of the page before.")] = None,
    status: Annotated[BatchStatus | None, Query()] = None,
) -> dict[str, Any]:
    """The caller's batches, newest first, with cursor paging (`after`) and a status filter."""
    with services.db.read() as session:
        rows = batches.list_batches(
            session, tenant, limit=limit + 1, after=after, status=status and str(status)
        )
        data = present(session, rows[:limit])
    return list_object(data, has_more=len(rows) > limit)


@router.get("/{batch_id}", summary="Retrieve a batch")
def retrieve(batch_id: str, services: ServicesDep, tenant: TenantDep) -> dict[str, Any]:
    """The batch: status, counts by state, timestamps, usage."""
    return present_one(services, batch_id, tenant)


@router.post("/{batch_id}/cancel", summary="Cancel a batch")
def cancel(batch_id: str, services: ServicesDep, tenant: TenantDep) -> dict[str, Any]:
    """Cancel: queued requests end at once, running ones stop within a second."""
    with services.db.write() as session:
        batches.cancel_batch(session, batch_id, tenant, now=utcnow())
    return present_one(services, batch_id, tenant)
