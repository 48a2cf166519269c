"""Celery tasks: thin wrappers that hand a message's dispatch token to the runtime."""

from __future__ import annotations

import logging
import os
import threading
from typing import Any

from celery.signals import worker_init, worker_shutdown, worker_shutting_down

from models.settings import get_settings
from worker.celery_app import RUN_JOBS, app
from worker.runtime import Runtime

log = logging.getLogger(__name__)

_runtime: Runtime | None = None
_stopping: threading.Thread | None = None


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


@worker_shutting_down.connect
def _begin_stop(**_kwargs: Any) -> None:
    # At the signal, so the runtime's grace runs while Celery stops its own consumer
    # (which, with the broker away, waits out its socket timeout).
    global _stopping
    if _runtime is not None and _stopping is None:
        _stopping = threading.Thread(target=_runtime.close, name="runtime-stop")
        _stopping.start()


@worker_shutdown.connect
def _stop_runtime(**_kwargs: Any) -> None:
    global _runtime
    _begin_stop()
    if _stopping is not None:
        _stopping.join()
    if _runtime is not None and _runtime.stuck:
        # The interpreter would wait at exit for a thread blocked on a database that does
        # not answer; the stop must end within its grace, and SQL leases recover the rest.
        logging.shutdown()
        os._exit(0)
    _runtime = None


@app.task(name=RUN_JOBS)
def run_jobs(token: str, size: int | None = None, reserve: bool = False) -> None:
    """Hand the group dispatched under ``token`` to the runtime; it starts when there is room."""
    if _runtime is None:
        raise RuntimeError("the worker runtime is not running (start it with `aivbatch worker`)")
    _runtime.offer(token, size=size or get_settings().dispatch_group, reserve=reserve)
