"""Celery tasks: thin wrappers that hand a message's dispatch token to the runtime."""

from __future__ import annotations

import logging
import os
from typing import Any

from celery.signals import worker_init, worker_shutdown

from models.settings import get_settings
from worker.celery_app import RUN_JOBS, app
from worker.runtime import Runtime

log = logging.getLogger(__name__)

_runtime: Runtime | None = None


@worker_init.connect
def _start_runtime(**_kwargs: Any) -> None:
    global _runtime
    try:
        _runtime = Runtime(get_settings())
    except Exception:
        # Celery would log this and go on taking messages it cannot run: exit instead, so
        # whatever supervises the worker sees it and starts it again.
        log.exception("the worker runtime could not start; exiting")
        os._exit(1)


@worker_shutdown.connect
def _stop_runtime(**_kwargs: Any) -> None:
    global _runtime
    if _runtime is not None:
        _runtime.close()
        _runtime = None


@app.task(name=RUN_JOBS)
def run_jobs(token: str, size: int | None = None, reserve: bool = False) -> None:
    """Hand the group dispatched under ``token`` to the runtime; it starts when there is room."""
    if _runtime is None:
        raise RuntimeError("the worker runtime is not running (start it with `aivbatch worker`)")
    _runtime.offer(token, size=size or get_settings().dispatch_group, reserve=reserve)
