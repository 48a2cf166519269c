"""Results of a batch: every finished job as JSONL, streamed, or one job by custom_id."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from api.deps import ServicesDep, TenantDep
from api.openapi import AUTHENTICATED, errors
from api.params import BatchId, CustomId
from api.responses import JobDetail
from api.views import job_detail, job_lines
from models import batches, results
from models.results import Order

router = APIRouter(prefix="/v1/batches", tags=["results"])


@router.get(
    "/{batch_id}/results",
    summary="Results of a batch (JSONL)",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "One job object (as `GET …/jobs/{custom_id}` without the request)"
            " per line.",
            "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
        },
        **errors(400, 404, *AUTHENTICATED),
    },
)
def batch_results(
    batch_id: BatchId,
    services: ServicesDep,
    tenant: TenantDep,
    order: Annotated[
        Order,
        Query(description="input: as submitted; custom_id: sorted as strings (line-10 < line-2)"),
    ] = "input",
) -> StreamingResponse:
    """Every finished request (succeeded, failed, cancelled, expired) as one JSON line each.

    Streamed a page at a time, so any batch size costs the same memory. While the batch
    runs, this holds what has finished so far.
    """
    with services.db.read() as session:
        batches.get_batch(session, batch_id, tenant)
    rows = results.finished_jobs(services.db.read, batch_id, order=order)
    return StreamingResponse(job_lines(rows), media_type="application/x-ndjson")


@router.get(
    "/{batch_id}/jobs/{custom_id:path}",
    summary="One request of a batch",
    responses=errors(400, 404, *AUTHENTICATED),
)
def job(
    batch_id: BatchId, custom_id: CustomId, services: ServicesDep, tenant: TenantDep
) -> JobDetail:
    """One request: its status, output or error, usage, timings, and the request itself."""
    with services.db.read() as session:
        found = results.get_job(session, batch_id, custom_id, tenant)
        return job_detail(found, batches.get_batch(session, batch_id, tenant))
