"""Following a server-sent event route to its final event, reconnecting when it drops."""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Iterator

from cli.client import Api, CallFailed, SseEvent

# Waits between reconnection attempts; the last one repeats until GIVE_UP_AFTER.
BACKOFF = (0.2, 0.5, 1.0, 2.0, 3.0)
GIVE_UP_AFTER = 60.0


def transient(exc: CallFailed) -> bool:
    """Whether a failure may pass: no answer at all, or a gateway's 502/503/504."""
    return exc.status is None or exc.status in (502, 503, 504)


def follow(
    api: Api,
    path: str,
    final: Collection[str],
    stop: threading.Event | None = None,
    give_up_after: float = GIVE_UP_AFTER,
) -> Iterator[SseEvent]:
    """The events of ``path`` until one named in ``final``, resuming with Last-Event-ID.

    A stream that closes before its final event, or a connection that drops, is picked up
    again after the last event seen (the API restarted, a proxy timed out). Refusals (404,
    401) are raised at once; so is a stream that stays unreachable for ``give_up_after``.
    Returns early, without error, once ``stop`` is set.
    """
    stop = stop or threading.Event()
    last_id: str | None = None
    failures = 0
    failing_since: float | None = None
    while not stop.is_set():
        try:
            for event in api.events(path, last_event_id=last_id):
                failures, failing_since = 0, None
                if event.id:
                    last_id = event.id
                yield event
                if event.event in final:
                    return
            problem = "the server closed the stream before its final event"
        except CallFailed as exc:
            if not transient(exc):
                raise
            problem = str(exc)
        now = time.monotonic()
        failing_since = failing_since or now
        if now - failing_since > give_up_after:
            raise CallFailed(f"lost {path} for {give_up_after:.0f}s: {problem}")
        stop.wait(BACKOFF[min(failures, len(BACKOFF) - 1)])
        failures += 1
