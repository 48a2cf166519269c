"""Batches: create (inline or from an uploaded file), list, read, cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool

from api import creation
from api.body import spool_json
from api.deps import ServicesDep, TenantDep
from api.openapi import AUTHENTICATED, errors, json_body
from api.params import After, BatchId
from api.responses import BatchList, BatchObject
from api.schemas import CreateBatch
from api.services import Services
from api.views import batch_list, present
from models import batches
from models.states import BatchStatus
from models.types import utcnow

router = APIRouter(prefix="/v1/batches", tags=["batches"])


def present_one(services: Services, batch_id: str, tenant: str) -> BatchObject:
    """The batch object of one of the tenant's batches."""
    with services.db.read() as session:
        return present(session, [batches.get_batch(session, batch_id, tenant)])[0]


@router.post(
    "",
    summary="Create a batch",
    responses=errors(400, 404, 413, 422, *AUTHENTICATED),
    openapi_extra=json_body(
        CreateBatch, "Inline `requests` (native), or an uploaded `input_file_id` (OpenAI)."
    ),
)
async def create(request: Request, services: ServicesDep, tenant: TenantDep) -> BatchObject:
    """Create a batch from inline `requests` or an uploaded `input_file_id`.

    Every request is checked before anything is visible; the answer names each bad one.
    The batch and all its requests are written in one transaction, and queued at once.
    """
    body = await spool_json(request)
    try:
        return await run_in_threadpool(creation.create_batch, services, tenant, body)
    finally:
        body.close()


@router.get("", summary="List batches", responses=errors(400, 404, *AUTHENTICATED))
def list_(
    services: ServicesDep,
    tenant: TenantDep,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    after: After = None,
    status: Annotated[BatchStatus | None, Query()] = None,
) -> BatchList:
    """The caller's batches, newest first, with cursor paging (`after`) and a status filter."""
    with services.db.read() as session:
        rows = batches.list_batches(
            session, tenant, limit=limit + 1, after=after, status=status and str(status)
        )
        data = present(session, rows[:limit])
    return batch_list(data, has_more=len(rows) > limit)


@router.get("/{batch_id}", summary="Retrieve a batch", responses=errors(400, 404, *AUTHENTICATED))
def retrieve(batch_id: BatchId, services: ServicesDep, tenant: TenantDep) -> BatchObject:
    """The batch: status, counts by state, timestamps, usage."""
    return present_one(services, batch_id, tenant)


@router.post(
    "/{batch_id}/cancel",
    summary="Cancel a batch",
    responses=errors(400, 404, 409, *AUTHENTICATED),
)
def cancel(batch_id: BatchId, services: ServicesDep, tenant: TenantDep) -> BatchObject:
    """Cancel: queued requests end at once, running ones stop within a second."""
    with services.db.write() as session:
        batches.cancel_batch(session, batch_id, tenant, now=utcnow())
    return present_one(services, batch_id, tenant)
