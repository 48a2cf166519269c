"""Live progress over server-sent events (see docs/api.md for the events)."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import StreamingResponse

from api import live
from api.deps import KeyIdDep, ServicesDep, TenantDep
from api.openapi import AUTHENTICATED, errors
from api.params import BatchId, CustomId, LastEventId
from api.services import Services
from api.streams import StreamSlot, guarded, key_check
from models import batches, results

router = APIRouter(prefix="/v1/batches", tags=["events"])

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"text/event-stream": {"schema": {"type": "string"}}}},
    **errors(400, 404, *AUTHENTICATED),
}


def _check_batch(services: Services, batch_id: str, tenant: str) -> None:
    with services.db.read() as session:
        batches.get_batch(session, batch_id, tenant)


def _check_job(services: Services, batch_id: str, custom_id: str, tenant: str) -> None:
    with services.db.read() as session:
        results.get_job(session, batch_id, custom_id, tenant)


async def _stream(
    services: Services, tenant: str, key_id: str, feed: AsyncGenerator[bytes, None]
) -> StreamingResponse:
    """The feed as an event stream, on one of the tenant's stream slots."""
    slot = await StreamSlot.take(services, tenant)
    body = guarded(feed, slot, key_check(services, key_id))
    return StreamingResponse(body, media_type="text/event-stream", headers=SSE_HEADERS)


@router.get(
    "/{batch_id}/events",
    summary="Follow a batch (server-sent events)",
    response_class=StreamingResponse,
    responses=_RESPONSES,
)
async def batch_events(
    batch_id: BatchId,
    services: ServicesDep,
    tenant: TenantDep,
    key_id: KeyIdDep,
    last_event_id: LastEventId = None,
    replay: Annotated[
        bool, Query(description="Start with every job event so far, not only new ones.")
    ] = False,
) -> StreamingResponse:
    """`progress` (counts by state) now and on change, `job` state changes, then `end`.

    Job events start with the next one, or from the first with `replay=true`. Resumable:
    reconnect with `Last-Event-ID` to continue after the last `job` event seen.
    """
    await run_in_threadpool(_check_batch, services, batch_id, tenant)
    start = last_event_id or ("0" if replay else None)
    return await _stream(services, tenant, key_id, live.batch_feed(services, batch_id, start))


@router.get(
    "/{batch_id}/jobs/{custom_id:path}/events",
    summary="Follow one request's text (server-sent events)",
    response_class=StreamingResponse,
    responses=_RESPONSES,
)
async def job_events(
    batch_id: BatchId,
    custom_id: CustomId,
    services: ServicesDep,
    tenant: TenantDep,
    key_id: KeyIdDep,
    last_event_id: LastEventId = None,
) -> StreamingResponse:
    """`chunk` events as the answer streams (per attempt), `retry`, then `done` or `error`.

    Resumable with `Last-Event-ID`; a finished request whose stream Redis no longer holds
    is answered from SQL.
    """
    await run_in_threadpool(_check_job, services, batch_id, custom_id, tenant)
    feed = live.job_feed(services, batch_id, custom_id, last_event_id)
    return await _stream(services, tenant, key_id, feed)
