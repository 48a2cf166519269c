"""A batch's requests page by page (state filter, custom_id search) and its errors by code."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import ServicesDep, TenantDep
from api.openapi import AUTHENTICATED, errors
from api.params import BatchId
from api.public import ErrorGroup, ErrorGroupList, JobList
from api.schemas import CUSTOM_ID_CHARACTERS
from api.views import job_object
from models import results
from models.requests import MAX_CUSTOM_ID
from models.states import JobStatus

router = APIRouter(prefix="/v1/batches", tags=["batches"])


@router.get(
    "/{batch_id}/jobs",
    summary="List the requests of a batch",
    responses=errors(400, 404, *AUTHENTICATED),
)
def list_jobs(
    batch_id: BatchId,
    services: ServicesDep,
    tenant: TenantDep,
    status: Annotated[JobStatus | None, Query(description="Only requests in this state.")] = None,
    search: Annotated[
        str | None,
        Query(max_length=MAX_CUSTOM_ID, description="Only custom_ids holding this (any case)."),
    ] = None,
    after: Annotated[
        str | None,
        Query(
            max_length=MAX_CUSTOM_ID,
            pattern=CUSTOM_ID_CHARACTERS,
            description="The last custom_id of the page before.",
        ),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> JobList:
    """The batch's requests in input order, with cursor paging (`after`, `has_more`)."""
    with services.db.read() as session:
        page = results.list_jobs(
            session,
            batch_id,
            tenant,
            status=status and str(status),
            search=search or None,
            after=after,
            limit=limit,
        )
        data = [job_object(job) for job in page.jobs]
    return JobList(
        data=data,
        first_id=data[0].custom_id if data else None,
        last_id=data[-1].custom_id if data else None,
        has_more=page.has_more,
    )


@router.get(
    "/{batch_id}/errors",
    summary="Errors of a batch, grouped by code",
    responses=errors(400, 404, *AUTHENTICATED),
)
def errors_by_code(batch_id: BatchId, services: ServicesDep, tenant: TenantDep) -> ErrorGroupList:
    """The batch's unsuccessful requests grouped by error code, the largest group first."""
    with services.db.read() as session:
        groups = results.errors_by_code(session, batch_id, tenant)
    data = [
        ErrorGroup(code=g.code, count=g.count, message=g.message, custom_ids=g.custom_ids)
        for g in groups
    ]
    return ErrorGroupList(data=data, total=sum(g.count for g in groups))
