"""Following a batch live: its event stream, and the text of one running job at a time.

Two threads read the two server-sent event routes and update one ``BatchView`` under a
lock; the calling thread draws it, so a Ctrl-C lands there and nothing blocks it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from rich.console import Console
from rich.live import Live

from cli.client import Api, CallFailed
from cli.follow import follow
from cli.view import BatchView, LiveText
from models.rediskeys import TERMINAL_EVENTS

TICK = 0.1
# How often the throughput is re-sampled when no progress arrives, so it decays to zero.
RESAMPLE_SECONDS = 1.0


class WatchError(Exception):
    """Watching stopped for a reason other than the batch ending (the message says which)."""


@dataclass
class Watch:
    """What the two reader threads share with the drawing thread."""

    api: Api
    batch_id: str
    view: BatchView
    lock: threading.Lock = field(default_factory=threading.Lock)
    stop: threading.Event = field(default_factory=threading.Event)
    # Jobs known to be running, the most recently started last.
    running: dict[str, None] = field(default_factory=dict)
    # Jobs whose text was followed to its end: never picked again.
    finished: set[str] = field(default_factory=set)
    batch: dict[str, Any] | None = None
    error: str | None = None

    def take_progress(self, status: str, total: int, counts: dict[str, int]) -> None:
        """Update the view (call with the lock held)."""
        self.view.update(status, int(total), counts)

    def read_batch_events(self) -> None:
        """Thread body: apply the batch's events until its `end`."""
        path = f"/v1/batches/{quote(self.batch_id, safe='')}/events"
        try:
            for event in follow(self.api, path, final=("end",), stop=self.stop):
                data = event.json()
                with self.lock:
                    self._apply_batch_event(event.event, data)
        except (CallFailed, ValueError, KeyError, TypeError) as exc:
            with self.lock:
                self.error = f"batch events: {exc}"

    def _apply_batch_event(self, name: str, data: dict[str, Any]) -> None:
        if name == "progress":
            self.take_progress(data["status"], data["total"], data["counts"])
        elif name == "job":
            custom_id = str(data["custom_id"])
            self.running.pop(custom_id, None)
            if data["status"] == "running":
                self.running[custom_id] = None
        elif name == "end":
            total = data.get("request_counts", {}).get("total", self.view.total)
            self.take_progress(data["status"], total, data.get("counts", self.view.counts))
            self.batch = data

    def read_job_text(self) -> None:
        """Thread body: follow one running job's text; when it ends, switch to another."""
        while not self.stop.is_set():
            custom_id = self._pick()
            if custom_id is None:
                self.stop.wait(TICK)
                continue
            live = LiveText(custom_id)
            with self.lock:
                self.view.live = live
            try:
                self._follow_job(live)
            except (CallFailed, ValueError, KeyError, TypeError):
                pass  # that job's text is not to be had (gone from Redis, say): show another
            with self.lock:
                self.finished.add(custom_id)
                self.running.pop(custom_id, None)

    def _pick(self) -> str | None:
        with self.lock:
            for custom_id in reversed(self.running):
                if custom_id not in self.finished:
                    return custom_id
        return None

    def _follow_job(self, live: LiveText) -> None:
        path = (
            f"/v1/batches/{quote(self.batch_id, safe='')}"
            f"/jobs/{quote(live.custom_id, safe='')}/events"
        )
        for event in follow(self.api, path, final=TERMINAL_EVENTS, stop=self.stop):
            data = event.json()
            attempt = int(data.get("attempt", live.attempt))
            with self.lock:
                if event.event == "chunk":
                    live.add(attempt, str(data.get("text", "")))
                elif event.event == "retry":
                    live.ended = f"attempt {attempt} failed ({data.get('code')}), retrying"
                elif event.event == "done":
                    live.ended = "succeeded"
                elif event.event == "error":
                    live.ended = f"{data.get('status')} ({data.get('code')})"


def watch_batch(
    api: Api,
    batch_id: str,
    console: Console,
    health: Callable[[], str | None] | None = None,
) -> dict[str, Any]:
    """Show a batch live until it ends; returns its final batch object.

    ``health`` is asked every tick; a message from it stops the watch with WatchError
    (`aivbatch demo` uses it to notice a child process that died).
    """
    first = api.get(f"/v1/batches/{quote(batch_id, safe='')}")
    watch = Watch(api, batch_id, BatchView(batch_id))
    watch.take_progress(first["status"], first["request_counts"]["total"], first["counts"])
    if watch.view.done:
        console.print(watch.view)
        return dict(first)
    threads = [
        threading.Thread(target=watch.read_batch_events, name="batch-events", daemon=True),
        threading.Thread(target=watch.read_job_text, name="job-text", daemon=True),
    ]
    for thread in threads:
        thread.start()
    try:
        if console.is_terminal:
            with Live(watch.view, console=console, auto_refresh=False) as live:
                _loop(watch, health, live.refresh)
        else:
            printer = _LinePrinter(console, watch.view)
            _loop(watch, health, printer.maybe_print)
            console.print(watch.view)
    finally:
        watch.stop.set()
        for thread in threads:
            thread.join(timeout=1.0)  # daemons: a reader stuck in a read must not hold us
    if watch.batch is None:  # only a bug in _loop could get here
        raise WatchError("stopped watching before the batch ended")
    return watch.batch


def _loop(watch: Watch, health: Callable[[], str | None] | None, draw: Callable[[], None]) -> None:
    resampled = time.monotonic()
    while True:
        with watch.lock:
            if watch.error is not None:
                raise WatchError(watch.error)
            if time.monotonic() - resampled > RESAMPLE_SECONDS:
                view = watch.view
                view.update(view.status, view.total, view.counts)
                resampled = time.monotonic()
            draw()
            if watch.batch is not None:
                return
        problem = health() if health else None
        if problem:
            raise WatchError(problem)
        time.sleep(TICK)


class _LinePrinter:
    """For a pipe or a log file: one summary line whenever the counts change."""

    def __init__(self, console: Console, view: BatchView) -> None:
        self.console = console
        self.view = view
        self.last: tuple[str, tuple[int, ...]] | None = None

    def maybe_print(self) -> None:
        """Print the summary if anything but the clock changed (the end is drawn whole)."""
        if self.view.done:
            return
        state = (self.view.status, tuple(self.view.counts.values()))
        if state != self.last:
            self.last = state
            self.console.print(self.view.summary())
