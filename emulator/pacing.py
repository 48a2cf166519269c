"""Paced bodies, shared by both protocols: delays between writes, mid-body faults, departures.

A body is a tuple of writes; a write is one or more ASGI body messages sent back to back
(more than one only where SSE framing cuts an event across network writes on purpose).
The last message of the last write ends the body. Each write costs one ``send`` and one
timer, so one process holds a thousand streams.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

Message = dict[str, Any]
Write = tuple[Message, ...]
Send = Callable[[Message], Awaitable[None]]
Receive = Callable[[], Awaitable[Message]]

# Pause between the pieces of one write, so each goes out in its own TCP segment.
SEAM_PAUSE = 0.002

COMPLETE, LEFT, FAULTED = "complete", "left", "faulted"


class EmulatedReset(Exception):
    """Raised mid-body on purpose: the server then drops the connection, body unfinished."""


@dataclass(frozen=True, slots=True)
class Pacing:
    """How one body is played: seconds between writes and the mid-body fault, if any."""

    delay: float = 0.0
    fault: str | None = None  # "reset", "stall" or "error_event"
    after: int | None = None  # writes sent before the fault; None: half
    stall: float = 0.0


def cut_index(pacing: Pacing, writes: int) -> int:
    """The write a mid-body fault replaces: ``after``, else half way, never past the last."""
    # The last write is always held back, so a reset leaves the body unfinished.
    return min(writes // 2 if pacing.after is None else pacing.after, writes - 1)


def body_message(data: bytes, more: bool) -> Message:
    """One ASGI body message."""
    return {"type": "http.response.body", "body": data, "more_body": more}


async def left_within(watcher: asyncio.Future[Any], seconds: float) -> bool:
    """Wait up to ``seconds``; True as soon as the client has gone."""
    if watcher.done():
        return True
    if seconds <= 0:
        return False
    done, _ = await asyncio.wait({watcher}, timeout=seconds)
    return bool(done)


async def _send_write(send: Send, write: Write) -> None:
    if len(write) == 1:
        await send(write[0])
        return
    for i, message in enumerate(write):
        if i:
            await asyncio.sleep(SEAM_PAUSE)
        await send(message)


async def play(
    send: Send,
    watcher: asyncio.Future[Any],
    start: Message,
    writes: tuple[Write, ...],
    pacing: Pacing,
    error_tail: tuple[Write, ...] = (),
) -> str:
    """Send ``start`` and the writes, playing the fault; COMPLETE, LEFT or FAULTED.

    ``watcher`` is a pending ``receive()``: it completes when the client disconnects
    (uvicorn's ``send`` stays silent after the client is gone). ``error_tail`` replaces
    the rest of the body for an ``error_event`` fault.
    """
    await send(start)
    cut_at = cut_index(pacing, len(writes)) if pacing.fault is not None else -1
    delay = pacing.delay
    for i, write in enumerate(writes):
        if i == cut_at:
            if pacing.fault == "reset":
                raise EmulatedReset("emulator fault: reset mid-body")
            if pacing.fault == "error_event":
                for tail in error_tail:
                    await _send_write(send, tail)
                return FAULTED
            if await left_within(watcher, pacing.stall):
                return LEFT
        if i and delay:
            await asyncio.sleep(delay)
        if watcher.done():
            return LEFT
        await _send_write(send, write)
    return COMPLETE
