"""Client commands on batches: submit, status, list, watch, results, cancel."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterable
from enum import StrEnum
from pathlib import Path
from typing import IO, Annotated, Any
from urllib.parse import quote

import typer
from rich.markup import escape

from cli.client import DEFAULT_API_URL, Api, ApiKey, ApiUrl
from cli.common import EXIT_INTERRUPTED, EXIT_NOT_COMPLETED, connect, err, fail, out
from cli.inputs import InputError, read_requests
from cli.show import batch_detail, batch_list, outcome
from cli.watch import WatchError, watch_batch


class InputFormat(StrEnum):
    """Formats `submit` reads."""

    AUTO = "auto"
    NATIVE = "native"
    OPENAI = "openai"
    TEXT = "text"


class Order(StrEnum):
    """Orders of the results file."""

    INPUT = "input"
    CUSTOM_ID = "custom_id"


def batch_path(batch_id: str, *rest: str) -> str:
    """The route of a batch (and of something under it), its id escaped."""
    return "/".join([f"/v1/batches/{quote(batch_id, safe='')}", *rest])


def parse_metadata(pairs: list[str]) -> dict[str, str]:
    """``k=v`` options as a dict."""
    metadata: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r} is not key=value", param_hint="--metadata")
        metadata[key] = value
    return metadata


def submit(
    file: Annotated[
        Path, typer.Argument(help="JSONL (native or OpenAI batch lines), or one prompt a line.")
    ],
    fmt: Annotated[
        InputFormat, typer.Option("--format", help="Input format; auto looks at the first line.")
    ] = InputFormat.AUTO,
    model: Annotated[str | None, typer.Option(help="Model of requests that name none.")] = None,
    temperature: Annotated[
        float | None, typer.Option(help="Temperature of requests that set none.")
    ] = None,
    system_message: Annotated[
        str | None, typer.Option(help="System message of requests that have none.")
    ] = None,
    window: Annotated[
        str | None,
        typer.Option(help="Completion window: 30m, 24h, 7d (default: the server's, 24h)."),
    ] = None,
    metadata: Annotated[
        list[str] | None, typer.Option(help="key=value, repeatable (at most 16).")
    ] = None,
    watch: Annotated[bool, typer.Option(help="Follow the batch live until it ends.")] = False,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Submit a batch; prints its id. Every bad line is reported and nothing is sent."""
    try:
        parsed = read_requests(file, fmt.value)
    except OSError as exc:
        fail(f"{file}: {exc.strerror or exc}")
    except InputError as exc:
        for n, why in exc.problems:
            # One line each however long, for scripts and logs that read them.
            err.print(f"[red]{escape(str(file))}: line {n}:[/] {escape(why)}", soft_wrap=True)
        fail(f"{file}: {len(exc.problems)} bad line(s); nothing was sent")
    body: dict[str, Any] = {"requests": parsed.requests}
    options = {
        "model": model,
        "temperature": temperature,
        "system_message": system_message,
        "completion_window": window,
        "metadata": parse_metadata(metadata or []) or None,
    }
    body.update({k: v for k, v in options.items() if v is not None})
    with connect(api_url, api_key) as api:
        batch = api.post("/v1/batches", body)
        typer.echo(batch["id"])
        err.print(
            f"submitted {len(parsed.requests)} requests ({parsed.format}) as batch {batch['id']}"
        )
        if watch:
            raise typer.Exit(follow_to_end(api, batch["id"]))
        err.print(f"follow it with: aivbatch watch {batch['id']}")


def status(
    batch_id: Annotated[str, typer.Argument(help="The batch id.")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the raw batch object.")] = False,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Show a batch: status, jobs by state, timestamps, usage."""
    with connect(api_url, api_key) as api:
        batch = api.get(batch_path(batch_id))
    if as_json:
        typer.echo(json.dumps(batch, indent=2, ensure_ascii=False))
    else:
        out.print(batch_detail(batch))


def list_batches(
    status_filter: Annotated[
        str | None,
        typer.Option("--status", help="Only batches in this status (in_progress, completed, …)."),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=100, help="How many, newest first.")] = 20,
    after: Annotated[
        str | None, typer.Option(help="Start after this batch id (the next page).")
    ] = None,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """List your batches, newest first."""
    with connect(api_url, api_key) as api:
        page = api.get("/v1/batches", limit=limit, after=after, status=status_filter)
    data: list[dict[str, Any]] = page.get("data") or []
    if not data:
        err.print("no batches")
        return
    out.print(batch_list(data))
    if page.get("has_more"):
        err.print(f"more: aivbatch list --after {page['last_id']}")


def watch(
    batch_id: Annotated[str, typer.Argument(help="The batch id.")],
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Follow a batch live. Exit 0 if it completed, 3 if it ended otherwise, 1 on errors."""
    with connect(api_url, api_key) as api:
        raise typer.Exit(follow_to_end(api, batch_id))


def follow_to_end(api: Api, batch_id: str) -> int:
    """Watch a batch until it ends; returns the exit code its outcome deserves."""
    try:
        batch = watch_batch(api, batch_id, out)
    except WatchError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        err.print(f"stopped watching; the batch goes on (aivbatch watch {batch_id})")
        return EXIT_INTERRUPTED
    out.print(outcome(batch))
    if batch["status"] == "completed":
        return 0
    return EXIT_NOT_COMPLETED


def results(
    batch_id: Annotated[str, typer.Argument(help="The batch id.")],
    output: Annotated[
        str, typer.Option("--output", "-o", help="File to write the JSONL to; - for stdout.")
    ],
    order: Annotated[
        Order, typer.Option(help="input: the file's order; custom_id: sorted by it.")
    ] = Order.INPUT,
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Download the results of finished jobs as JSONL (while the batch runs: those so far)."""
    with connect(api_url, api_key) as api:
        lines = save_results(api, batch_id, output, order)
    where = "stdout" if output == "-" else output
    # On stdout the JSONL is the output: the count goes to stderr so a pipe stays clean.
    (err if output == "-" else out).print(f"wrote {lines} results to {escape(where)}")


def save_results(api: Api, batch_id: str, output: str, order: Order) -> int:
    """Stream the results into ``output`` (a file, written whole or not at all, or -)."""
    blocks = api.iter_bytes(batch_path(batch_id, "results"), order=order.value)
    if output == "-":
        try:
            return _copy(blocks, sys.stdout.buffer)
        except BrokenPipeError:
            # The reader stopped early (`| head`): that is its choice, not an error. Point
            # stdout at /dev/null so the interpreter's last flush does not complain.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            raise typer.Exit(0) from None
    target = Path(output)
    partial = target.with_name(target.name + ".partial")
    try:
        with partial.open("wb") as sink:
            lines = _copy(blocks, sink)
        partial.replace(target)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        fail(f"{output}: {exc.strerror or exc}")
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return lines


def _copy(blocks: Iterable[bytes], sink: IO[bytes]) -> int:
    lines, last = 0, b"\n"
    for block in blocks:
        sink.write(block)
        lines += block.count(b"\n")
        last = block[-1:] or last
    sink.flush()
    return lines + (last != b"\n")


def cancel(
    batch_id: Annotated[str, typer.Argument(help="The batch id.")],
    api_url: ApiUrl = DEFAULT_API_URL,
    api_key: ApiKey = None,
) -> None:
    """Cancel a batch: queued jobs end at once, running ones within a second."""
    with connect(api_url, api_key) as api:
        batch = api.post(batch_path(batch_id, "cancel"))
    out.print(outcome(batch))


def register(app: typer.Typer) -> None:
    """Add the batch commands to the app."""
    app.command()(submit)
    app.command()(status)
    app.command("list")(list_batches)
    app.command()(watch)
    app.command()(results)
    app.command()(cancel)
