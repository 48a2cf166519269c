"""`aivbatch demo`: the main job end to end on embedded defaults, then how to read it."""

from __future__ import annotations

import socket
import time
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.markup import escape

from cli import howto
from cli.client import Api, CallFailed
from cli.common import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_NOT_COMPLETED, out
from cli.localstack import LocalStack, StackError, StackOptions, child_env, start_stack
from cli.processes import StopRequested, Supervisor, stop_on_signals
from cli.samples import RUSSIAN_ID, sample_requests
from cli.show import outcome
from cli.up import dashboard_url, show
from cli.watch import WatchError, watch_batch
from models.settings import Settings, get_settings

DEFAULT_PORT = 8000
# A slower, longer answer than the emulator's default, and a few streams per worker, so the
# sample batch visibly queues, streams and finishes instead of ending in a blink.
EMULATOR_ARGS = ["--chunks", "40", "--delay-ms", "40"]
DEMO_PACE = {"worker_streams": "4"}
ANSWER_CHARS = 300


def port_free(host: str, port: int) -> bool:
    """Whether ``port`` can be listened on (as uvicorn does, with SO_REUSEADDR)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def child_settings(settings: Settings) -> dict[str, str]:
    """What the demo changes for its children: auth off, and its pace unless one is set."""
    extra = {"AIVBATCH_AUTH_ENABLED": "false"}
    for name, value in DEMO_PACE.items():
        if name not in settings.model_fields_set:
            extra[f"AIVBATCH_{name.upper()}"] = value
    return extra


def demo(
    requests: Annotated[
        int, typer.Option("--requests", min=1, max=50_000, help="Sample requests to submit.")
    ] = 12,
    keep: Annotated[
        bool, typer.Option(help="Keep the stack running after the batch, until Ctrl-C.")
    ] = False,
    port: Annotated[
        int | None,
        typer.Option(
            help=f"Port of the API (default {DEFAULT_PORT}, or a free one if taken; 0: any)."
        ),
    ] = None,
) -> None:
    """Start everything locally, run a sample batch live, and show how to read its results."""
    settings = get_settings()
    sup = Supervisor(
        child_env(settings, child_settings(settings)), settings.data_dir.resolve() / "logs"
    )
    code = EXIT_FAILED
    with stop_on_signals():
        try:
            stack = start_stack(
                settings, sup, StackOptions(port=_port(port), emulator_args=EMULATOR_ARGS)
            )
            _introduce(stack, sup)
            code = _run(stack, sup, settings, requests)
            if keep and not _hold(sup):
                code = EXIT_FAILED
            elif not keep:
                out.print(
                    "\nThe demo stops its processes now: run it with --keep to try the"
                    " commands above while they run."
                )
        except StackError as exc:
            out.print(f"[red]could not start the stack:[/] {escape(str(exc))}")
        except (CallFailed, WatchError) as exc:
            out.print(f"[red]the demo failed:[/] {escape(str(exc))}")
            out.print(f"the processes' logs are in {sup.log_dir}", soft_wrap=True)
        except (KeyboardInterrupt, StopRequested):
            out.print("stopping…")
            code = EXIT_INTERRUPTED
        finally:
            sup.stop()
    stopped = " ".join(f"{c.name}={c.pid}" for c in sup.children)
    out.print(f"stopped every process the demo started: {stopped or 'none'}")
    raise typer.Exit(code)


def _port(wanted: int | None) -> int:
    if wanted is not None:
        return wanted
    if port_free("127.0.0.1", DEFAULT_PORT):
        return DEFAULT_PORT
    out.print(f"[yellow]note:[/] port {DEFAULT_PORT} is taken: the API gets a free port")
    return 0  # start_stack's "any free port"


def _introduce(stack: LocalStack, sup: Supervisor) -> None:
    show(stack, sup, auth=False)
    out.print(
        "[yellow]The demo turned auth off for the processes it started"
        " (AIVBATCH_AUTH_ENABLED=false): no API key is needed to try it."
    )
    pids = " ".join(f"{c.name}={c.pid}" for c in sup.children)
    out.print(f"processes: {pids}")


def _health(sup: Supervisor) -> str | None:
    dead = sup.dead()
    if dead is None:
        return None
    last = (dead.tail(1) or "no output").strip()
    return f"{dead.name} exited unexpectedly (code {dead.proc.returncode}): {last}"


def _run(stack: LocalStack, sup: Supervisor, settings: Settings, n: int) -> int:
    with Api(stack.api_url) as api:
        body = {"requests": sample_requests(n), "metadata": {"source": "aivbatch demo"}}
        batch_id = api.post("/v1/batches", body)["id"]
        out.print(f"\nsubmitted {n} sample requests as batch [bold]{batch_id}[/]")
        page = f"{dashboard_url(stack.api_url)}/batches/{batch_id}"
        out.print(f"watch it in the dashboard: {page}\n", soft_wrap=True)
        final = watch_batch(api, batch_id, out, health=lambda: _health(sup))
        out.print(outcome(final))
        _show_answer(api, batch_id)
    _show_howto(stack, settings, batch_id)
    return 0 if final["status"] == "completed" else EXIT_NOT_COMPLETED


def _show_answer(api: Api, batch_id: str) -> None:
    job: dict[str, Any] = api.get(
        f"/v1/batches/{quote(batch_id, safe='')}/jobs/{quote(RUSSIAN_ID, safe='')}"
    )
    prompt = job.get("messages", [{}])[-1].get("content", "")
    answer = str(job.get("output") or "")
    if len(answer) > ANSWER_CHARS:
        answer = answer[:ANSWER_CHARS] + "…"
    out.print(f"\n{RUSSIAN_ID} asked: {escape(prompt)}")
    out.print(f"{RUSSIAN_ID} got ({job['status']}): {escape(answer)}")


def _show_howto(stack: LocalStack, settings: Settings, batch_id: str) -> None:
    sections = {
        "over HTTP (curl)": howto.curl_commands(stack.api_url, batch_id, RUSSIAN_ID),
        "with the aivbatch command line": howto.cli_commands(stack.api_url, batch_id),
        "in Redis (redis-cli; keys documented in docs/redis.md)": howto.redis_commands(
            stack.redis_url, stack.redis_embedded, settings.redis_prefix, batch_id, RUSSIAN_ID
        ),
    }
    out.print("\n[bold]Read the results[/]")
    for title, commands in sections.items():
        out.print(f"\n{title}:")
        for command in commands:
            # soft_wrap: a long command stays one line, so it can be copied and pasted.
            out.print(f"  {command}", markup=False, soft_wrap=True)
    out.print(f"\nEvery result is also kept in SQL: {stack.sql_url}", soft_wrap=True)


def _hold(sup: Supervisor) -> bool:
    """Keep the stack up until Ctrl-C (True) or until a child dies (False)."""
    out.print("\nThe stack keeps running so you can try the commands above; Ctrl-C stops it.")
    try:
        while (problem := _health(sup)) is None:
            time.sleep(0.5)
    except (KeyboardInterrupt, StopRequested):
        out.print("stopping…")
        return True
    out.print(f"[red]{escape(problem)}")
    return False


def register(app: typer.Typer) -> None:
    """Add `demo` to the app."""
    app.command()(demo)
