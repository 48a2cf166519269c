"""Liveness, readiness and metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from api import metrics
from api.deps import ServicesDep
from api.openapi import errors
from api.outages import REDIS, REDIS_UNAVAILABLE
from api.responses import Health, Ready, ReadyChecks
from api.services import Services

router = APIRouter(tags=["service"])
_REDIS_DOWN: tuple[type[Exception], ...] = (RedisError, *REDIS_UNAVAILABLE)


@router.get("/healthz", summary="Alive")
def healthz() -> Health:
    """The process is running."""
    return Health(status="ok")


def _sql_answers(services: Services) -> str | None:
    try:
        with services.db.read() as session:
            session.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return type(exc).__name__
    return None


@router.get(
    "/readyz",
    summary="Ready",
    response_model=Ready,
    responses={503: {"model": Ready, "description": "SQL or Redis is down"}},
)
async def readyz(services: ServicesDep) -> JSONResponse:
    """SQL and Redis both answer: 200; otherwise 503 naming what does not."""
    sql_error = await run_in_threadpool(_sql_answers, services)
    try:
        await services.redis.ping()
        redis_state = "ok"
        services.outages.up(REDIS)
    except _REDIS_DOWN as exc:
        redis_state = f"down: {type(exc).__name__}"
    sql_state = "ok" if sql_error is None else f"down: {sql_error}"
    ready = sql_state == redis_state == "ok"
    body = Ready(
        status="ready" if ready else "not ready",
        checks=ReadyChecks(sql=sql_state, redis=redis_state),
    )
    return JSONResponse(body.model_dump(), 200 if ready else 503)


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {"schema": {"type": "string"}}}},
        **errors(503),
    },
)
async def metrics_text(request: Request, services: ServicesDep) -> Response:
    """Jobs and batches by state, upstream errors by kind, latency histograms."""
    body = await metrics.render(services, request.app.state.metrics_registry)
    return Response(body, media_type=metrics.CONTENT_TYPE)
