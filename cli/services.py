"""Commands that run the service's processes.

They start programs by module name rather than importing them, so the command line never
imports the API, worker or emulator internals.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer

from cli.schema import shown_url, upgrade
from cli.upstreams import require_routing
from cli.workerpool import WorkerPool
from models.settings import get_settings

# Open event streams would otherwise hold a stopping API until every watcher leaves.
GRACEFUL_SHUTDOWN_SECONDS = 5


def api_argv(host: str, port: int) -> list[str]:
    """The arguments of ``python -m uvicorn`` that serve the API."""
    return [
        "--factory",
        "api.app:create_app",
        "--host",
        host,
        "--port",
        str(port),
        "--timeout-graceful-shutdown",
        str(GRACEFUL_SHUTDOWN_SECONDS),
        # The API writes its own access lines, with each request's id (api/context.py).
        "--no-access-log",
    ]


def _exec_module(module: str, args: list[str]) -> None:
    """Replace this process with `python -m module args`, so signals reach it directly."""
    os.execv(sys.executable, [sys.executable, "-m", module, *args])


def migrate() -> None:
    """Bring the database schema up to date (AIVBATCH_DATABASE_URL, else the SQLite file)."""
    url = get_settings().sql_url
    upgrade(url)
    typer.echo(f"schema up to date: {shown_url(url)}")


def api(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
) -> None:
    """Run the HTTP API (migrating the schema first)."""
    require_routing()
    upgrade(get_settings().sql_url)
    _exec_module("uvicorn", api_argv(host, port))


def worker(
    processes: Annotated[
        int | None,
        typer.Option(
            min=1, help="Worker processes to run and keep running (default: one per core)."
        ),
    ] = None,
) -> None:
    """Run worker processes, one per core by default (start more, on any machine, to scale
    out); one that dies is restarted, and SIGTERM stops them all."""
    require_routing()
    count = processes or os.cpu_count() or 1
    if count == 1:
        _exec_module("worker", [])
    WorkerPool(count).run()


def dispatcher() -> None:
    """Run the dispatcher and reconciler (one per deployment)."""
    require_routing()
    _exec_module("worker.dispatcher", [])


def emulator(
    ctx: typer.Context,
    host: Annotated[
        str | None, typer.Option(help="Address to listen on (default 127.0.0.1).")
    ] = None,
    port: Annotated[int | None, typer.Option(help="Port to listen on (default 8765).")] = None,
) -> None:
    """Serve the emulator: the Aivvm protocol at /api and the OpenAI one at /v1 (a stand-in).

    Every other option goes through unchanged: --chunks, --chunk-size, --ttfb-ms,
    --delay-ms, --fault-rate, --faults, --fault-times, --retry-after, --stall-seconds,
    --openai-models, --api-key (see `python -m emulator --help`). Unset options keep
    AIVBATCH_EMULATOR_* values.
    """
    args = [*(["--host", host] if host else []), *(["--port", str(port)] if port else [])]
    _exec_module("emulator", [*args, *ctx.args])


def register(app: typer.Typer) -> None:
    """Add the service commands to the app."""
    for command in (migrate, api, worker, dispatcher):
        app.command()(command)
    app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(
        emulator
    )
