"""The FastAPI application: native and OpenAI-compatible batch routes, files, live events,
webhooks, and the dashboard at /ui.

Run it with `aivbatch api` (uvicorn's ``--factory api.app:create_app``).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from api import errors, openapi
from api.auth import Authenticate
from api.context import RequestContext, configure_logging
from api.limits import BodyLimit
from api.metrics import RequestMetrics
from api.outages import Outages
from api.routes import (
    batches,
    events,
    files,
    health,
    input_checks,
    jobs,
    models,
    results,
    webhooks,
)
from api.schemas import CreateBatch
from api.services import Services
from api.ui import pages
from models.settings import Settings, get_settings

log = logging.getLogger(__name__)

DESCRIPTION = """
Submit batches of chat prompts, follow them live, read their results.

Native routes take inline requests; the OpenAI-compatible ones (files, batches) let
existing OpenAI batch tooling work unchanged with `base_url=<this server>/v1`.
Authenticate with `Authorization: Bearer <key>` (`aivbatch keys create`). Every answer
carries `x-request-id`; errors have one shape (`ErrorResponse`) whatever the route.
"""


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build the app; its clients are built at startup and closed at shutdown."""
    settings = settings or get_settings()
    outages = Outages()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging()
        services = Services.start(settings, outages)
        app.state.services = services
        if not settings.auth_enabled:
            log.warning("authentication is OFF (AIVBATCH_AUTH_ENABLED=false): anyone may call")
        try:
            yield
        finally:
            await services.close()

    app = FastAPI(
        title="aivbatch",
        version="0.1.0",
        summary="Self-hosted batch chat completions, streamed live.",
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    registry = CollectorRegistry(auto_describe=True)
    app.state.metrics_registry = registry
    errors.install(app)
    openapi.install(app)
    openapi.register_body(app, CreateBatch)
    # Events first: a custom_id may hold "/", so ".../jobs/{custom_id}" would also match
    # ".../jobs/{custom_id}/events".
    for module in (events, batches, jobs, results, files, input_checks, models, webhooks, health):
        app.include_router(module.router)
    pages.install(app)
    # Added innermost first. The body limit needs the caller settled by Authenticate, which
    # runs before anything reads the body; the request id wraps every answer.
    app.add_middleware(
        BodyLimit,
        max_bytes=settings.max_body_bytes,
        anonymous_max_bytes=settings.anonymous_max_body_bytes,
    )
    app.add_middleware(Authenticate)
    app.add_middleware(RequestMetrics, registry=registry)
    app.add_middleware(RequestContext, outages=outages)
    return app
