"""`aivbatch upstreams`: the upstreams of the routing file, and whether they answer.

`check` asks each upstream for its model list (``GET {base_url}/models`` for kind openai,
``/api/models`` for aivvm) with its key, and says what answered, how fast, and which of the
models routed to it the upstream lists. Keys are read from the variables the file names
and never printed.
"""

from __future__ import annotations

import os
import time
from fnmatch import fnmatchcase
from typing import Annotated, Any

import httpx
import typer
from rich.markup import escape

from cli.common import EXIT_FAILED, fail, out
from models.errors import ConfigError
from models.routing import Routing
from models.settings import get_settings
from models.upstreams import Upstream

app = typer.Typer(help="The upstreams models are routed to (aivbatch.toml).", no_args_is_help=True)

# Config problems exit with this, as usage errors do.
EXIT_CONFIG = 2


def require_routing() -> Routing:
    """The routing in force; a bad file is one line naming the key, and exit code 2."""
    try:
        return Routing.from_settings(get_settings())
    except ConfigError as exc:
        fail(str(exc), EXIT_CONFIG)


def probe(client: httpx.Client, upstream: Upstream, key: str) -> tuple[bool, str]:
    """Ask one upstream for its models: (answered well, what to say of it)."""
    openai_kind = upstream.kind == "openai"
    url = upstream.base_url + ("/models" if openai_kind else "/api/models")
    headers = {"authorization": f"Bearer {key}"} if key and openai_kind else {}
    started = time.monotonic()
    try:
        response = client.get(url, headers={**headers, **upstream.headers})
    except httpx.HTTPError as exc:
        return False, f"no answer ({type(exc).__name__}: {_masked(str(exc), key)})"
    ms = (time.monotonic() - started) * 1000
    if response.status_code != 200:
        return False, f"answered {response.status_code} in {ms:.0f} ms: " + _masked(
            " ".join(response.text.split())[:200], key
        )
    listed = _model_ids(response)
    said = f"answered 200 in {ms:.0f} ms, listing {len(listed)} models"
    routed = [*upstream.model_map.values(), *upstream.models]
    missing = [p for p in routed if not any(fnmatchcase(m, p) for m in listed)]
    if missing and listed:
        said += f"; none of them matches {', '.join(missing)}"
    return True, said


def _model_ids(response: httpx.Response) -> list[str]:
    try:
        data: Any = response.json()
    except ValueError:
        return []
    items = data.get("data") if isinstance(data, dict) else data
    if not isinstance(items, list):
        return []
    return [m["id"] for m in items if isinstance(m, dict) and isinstance(m.get("id"), str)]


def _masked(text: str, key: str) -> str:
    return text.replace(key, "***") if key else text


@app.command()
def check(
    timeout: Annotated[float, typer.Option(help="Seconds to wait for each upstream.")] = 10.0,
) -> None:
    """Probe every upstream: what answered, how fast, which routed models it lists."""
    settings = get_settings()
    routing = require_routing()
    out.print(f"routing: {escape(routing.source)}")
    failed = 0
    with httpx.Client(timeout=timeout) as client:
        for upstream in routing:
            # The file names the variable holding the key; it is read here, never shown.
            key = upstream.key(settings, os.environ)
            ok, said = probe(client, upstream, key)
            failed += not ok
            mark = "[green]ok[/]" if ok else "[red]failed[/]"
            head = f"{upstream.name} ({upstream.kind}, {upstream.base_url})"
            out.print(f"{mark} {escape(head)}: {escape(said)}", soft_wrap=True)
    if failed:
        raise typer.Exit(EXIT_FAILED)


def register(main: typer.Typer) -> None:
    """Add `aivbatch upstreams` to the app."""
    main.add_typer(app, name="upstreams")
