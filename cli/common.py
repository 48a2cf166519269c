"""What every client command shares: consoles, one-line failures, the API connection."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape

from cli.client import Api, CallFailed

# Piped output (a file, a test) gets long lines rather than tables folded at 80 columns.
PIPE_WIDTH = 120
EXIT_FAILED = 1
# A watched batch ended, but not completed (cancelled, expired, failed).
EXIT_NOT_COMPLETED = 3
EXIT_INTERRUPTED = 130


def make_console(*, stderr: bool = False) -> Console:
    """A console without syntax highlighting, wide when it writes to a pipe."""
    probe = Console(stderr=stderr)
    width = None if probe.is_terminal else PIPE_WIDTH
    return Console(stderr=stderr, highlight=False, width=width)


out = make_console()
err = make_console(stderr=True)


def fail(message: str, code: int = EXIT_FAILED) -> NoReturn:
    """Print ``error: message`` on one line to stderr and exit with ``code``."""
    one_line = " ".join(message.split())
    # soft_wrap: one line however long, for scripts and logs that read it.
    err.print(f"[red]error:[/] {escape(one_line)}", soft_wrap=True)
    raise typer.Exit(code)


@contextmanager
def connect(api_url: str, api_key: str | None) -> Iterator[Api]:
    """An API client whose failures become a one-line message and exit code 1."""
    try:
        with Api(api_url, api_key) as api:
            yield api
    except CallFailed as exc:
        fail(str(exc))


def when(ts: object, *, short: bool = False) -> str:
    """A unix timestamp as local date and time (``short``: to the minute, no year), or a dash."""
    if not isinstance(ts, int | float) or isinstance(ts, bool):
        return "—"
    shape = "%m-%d %H:%M" if short else "%Y-%m-%d %H:%M:%S"
    return datetime.fromtimestamp(ts).astimezone().strftime(shape)
