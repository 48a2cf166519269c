"""`aivbatch up`: the whole stack on this machine, until Ctrl-C."""

from __future__ import annotations

import time
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from cli.localstack import LocalStack, StackError, StackOptions, child_env, start_stack
from cli.processes import StopRequested, Supervisor, stop_on_signals
from cli.upstreams import require_routing
from models.settings import get_settings

console = Console(highlight=False)


def up(
    host: Annotated[str, typer.Option(help="Address the API listens on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port the API listens on.")] = 8000,
    emulator_port: Annotated[
        int, typer.Option(help="Port of the emulator, when one is started (0: any free port).")
    ] = 8765,
) -> None:
    """Run the API, a worker, the dispatcher (and Redis and the emulator when none is set)."""
    settings = get_settings()
    require_routing()
    sup = Supervisor(child_env(settings, {}), settings.data_dir.resolve() / "logs")
    code = 0
    with stop_on_signals():
        try:
            stack = start_stack(
                settings, sup, StackOptions(host=host, port=port, emulator_port=emulator_port)
            )
            show(stack, sup, auth=settings.auth_enabled)
            while (dead := sup.dead()) is None:
                time.sleep(0.5)
            console.print(f"[red]{dead.name} exited unexpectedly (code {dead.proc.returncode}):")
            console.print(dead.tail(), markup=False)
            code = 1
        except StackError as exc:
            console.print(f"[red]could not start the stack:[/] {escape(str(exc))}")
            code = 1
        except (KeyboardInterrupt, StopRequested):
            console.print("stopping…")
        finally:
            sup.stop()
    console.print("stopped" if code == 0 else "stopped everything after the failure above")
    raise typer.Exit(code)


def show(stack: LocalStack, sup: Supervisor, *, auth: bool) -> None:
    """Print where everything listens."""
    for note in stack.notes:
        console.print(f"[yellow]note:[/] {note}")
    pids = {c.name: c.pid for c in sup.children}
    table = Table(title="aivbatch is up — Ctrl-C stops everything", title_justify="left")
    for column in ("part", "where", "pid"):
        table.add_column(column)
    table.add_row(
        "API", f"{stack.api_url}  (OpenAPI docs at {stack.api_url}/docs)", _pid(pids, "api")
    )
    table.add_row("worker", "1 process", _pid(pids, "worker"))
    table.add_row("dispatcher", "1 process", _pid(pids, "dispatcher"))
    redis_kind = "embedded redis-server" if stack.redis_embedded else "configured"
    table.add_row("Redis", f"{stack.redis_url}  ({redis_kind})", _pid(pids, "redis"))
    upstream_kind = "the Aivvm emulator" if stack.emulated else "configured"
    table.add_row("upstream", f"{stack.aivvm_url}  ({upstream_kind})", _pid(pids, "emulator"))
    table.add_row("database", stack.sql_url, "")
    table.add_row("logs", f"{sup.log_dir}/<part>.log", "")
    console.print(table)
    console.print(f"Dashboard: {dashboard_url(stack.api_url)}", soft_wrap=True)
    if auth:
        console.print(
            "Auth is on: create a key with `aivbatch keys create --tenant NAME` and send it as"
            " `Authorization: Bearer KEY` (or set AIVBATCH_API_KEY for the CLI, or paste it"
            " into the dashboard)."
        )
    else:
        console.print("[yellow]Auth is off (AIVBATCH_AUTH_ENABLED=false): anyone may call the API.")


def dashboard_url(api_url: str) -> str:
    """Where the web dashboard is served."""
    return f"{api_url}/ui"


def _pid(pids: dict[str, int], name: str) -> str:
    return str(pids[name]) if name in pids else "—"


def register(app: typer.Typer) -> None:
    """Add `up` to the app."""
    app.command()(up)
