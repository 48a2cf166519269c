"""Results of a batch: every finished job as JSONL, streamed, or one job by custom_id."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from api.deps import ServicesDep, TenantDep
from api.views import job_object, jsonl
from models import batches, results
from models.results import Order

router = APIRouter(prefix="/v1/batches", tags=["results"])


@router.get(
    "/{batch_id}/results",
    summary="Results of a batch (JSONL)",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/x-ndjson": {}}}},
)
def batch_results(
    batch_id: str,
    services: ServicesDep,
    tenant: TenantDep,
    order: Annotated[Order, Query(description="input: as submitted; custom_id: sorted")] = "input",
) -> StreamingResponse:
    """Every finished request (succeeded, failed, cancelled, expired) as one JSON line each.

    Streamed a page at a time, so any batch size costs the same memory. While the batch
    runs, this holds what has finished so far.
    """
    with services.db.read() as session:
        batches.get_batch(session, batch_id, tenant)
    rows = results.finished_jobs(services.db.read, batch_id, order=order)
    return StreamingResponse(
        jsonl(job_object(job) for job in rows), media_type="application/x-ndjson"
    )


@router.get("/{batch_id}/jobs/{custom_id:path}", summary="One request of a batch")
def job(batch_id: str, custom_id: str, services: ServicesDep, tenant: TenantDep) -> dict[str, Any]:
    """One request: its status, output or error, usage, timings, and the request itself."""
    with services.db.read() as session:
        return job_object(results.get_job(session, batch_id, custom_id, tenant), with_request=True)
