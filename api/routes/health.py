"""Liveness, readiness and metrics."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response
from redis.exceptions import RedisError
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from api import metrics
from api.deps import ServicesDep
from api.services import Services

router = APIRouter(tags=["service"])


@router.get("/healthz", summary="Alive")
def healthz() -> dict[str, Any]:
    """The process is running."""
    return {"status": "ok"}


def _sql_answers(services: Services) -> str | None:
    try:
        with services.db.read() as session:
            session.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        return type(exc).__name__
    return None


@router.get("/readyz", summary="Ready", responses={503: {"description": "SQL or Redis is down"}})
async def readyz(services: ServicesDep) -> JSONResponse:
    """SQL and Redis both answer: 200; otherwise 503 naming what does not."""
    checks: dict[str, str] = {}
    sql_error = await run_in_threadpool(_sql_answers, services)
    checks["sql"] = "ok" if sql_error is None else f"down: {sql_error}"
    try:
        await services.redis.ping()
        checks["redis"] = "ok"
    except (RedisError, OSError) as exc:
        checks["redis"] = f"down: {type(exc).__name__}"
    ready = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ready" if ready else "not ready", "checks": checks}, 200 if ready else 503
    )


@router.get("/metrics", summary="Prometheus metrics", response_class=Response)
async def metrics_text(request: Request, services: ServicesDep) -> Response:
    """Jobs and batches by state, upstream errors by kind, latency histograms."""
    body = await metrics.render(services, request.app.state.metrics_registry)
    return Response(body, media_type=metrics.CONTENT_TYPE)
