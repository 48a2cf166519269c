"""Waiting for a condition with a deadline: the one way tests wait (never a fixed sleep)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    condition: Callable[[], T | None],
    timeout: float,
    what: str,
    context: Callable[[], str] | None = None,
    *,
    every: float = 0.05,
) -> T:
    """Poll ``condition`` until it returns something true; its value is returned.

    Fails the test after ``timeout`` seconds, naming ``what`` it waited for and, if given,
    ``context()`` (a log tail, say) to show why.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            detail = f"\n{context()}" if context is not None else ""
            raise AssertionError(f"waited {timeout:g}s for {what}{detail}")
        time.sleep(every)
