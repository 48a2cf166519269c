"""The `aivbatch` command line: one typer app, one module per group of commands."""

from __future__ import annotations

import typer

from cli import batches, demo, keys, services, up, upstreams, webhooks

app = typer.Typer(
    name="aivbatch",
    help="Self-hosted batch completions: submit batches of chat prompts, watch them stream.",
    no_args_is_help=True,
    add_completion=False,
)
batches.register(app)
keys.register(app)
services.register(app)
up.register(app)
demo.register(app)
upstreams.register(app)
webhooks.register(app)


def main() -> None:
    """Entry point of the `aivbatch` console script."""
    app()
