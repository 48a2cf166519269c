"""Checking a batch's requests in a thread while the caller writes the good ones.

Writing a chunk of jobs spends nearly all its time outside the GIL (SQLite's one statement
per chunk, the PostgreSQL server's COPY), and checking requests is Python: run side by side,
a large batch is accepted in about the time of the longer of the two, not their sum.

The thread runs the checks (``Intake``, fed by the caller's function) and hands the good
requests on in chunks through a short queue, so neither side holds more than a few chunks.
The caller's thread keeps the SQL session (a session is not shared between threads). If
the caller leaves early (an error of its own), the thread is told to stop and is waited for.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from types import TracebackType
from typing import TypeVar

from api.batch_input import Intake
from models.batches import NewJob

T = TypeVar("T")
Chunk = list[tuple[NewJob, str]]
# A hand-over is this many requests, or fewer holding this many bytes of messages; at most
# DEPTH wait: about a MiB held however large the requests are.
CHUNK = 500
CHUNK_BYTES = 256 * 1024
DEPTH = 4
_DONE = object()


class _Stopped(Exception):
    """The caller has left: the checks end without finishing."""


class CheckThread:
    """Runs ``check`` (which feeds ``intake``) in a thread; see the module docstring."""

    def __init__(self, intake: Intake, check: Callable[[CheckThread], object]) -> None:
        self.intake = intake
        self.check = check
        self.queue: queue.Queue[object] = queue.Queue(DEPTH)
        self.stop = threading.Event()
        self.pending: Chunk = []
        self.pending_bytes = 0
        self.thread = threading.Thread(target=self._run, name="batch-intake", daemon=True)
        self.done = False

    def __enter__(self) -> CheckThread:
        self.intake.sink = self._sink
        self.thread.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.done:
            self.stop.set()
            while not self.done:  # unblock a hand-over, until the thread says it ended
                self.done = self.queue.get() is _DONE
        self.thread.join()

    def stoppable(self, items: Iterable[T]) -> Iterator[T]:
        """``items``, ending (with _Stopped) once the caller has left."""
        for item in items:
            if self.stop.is_set():
                raise _Stopped
            yield item

    def chunks(self) -> Iterator[Chunk]:
        """The good requests, in order, as they are checked; re-raises the checks' errors."""
        while not self.done:
            item = self.queue.get()
            if item is _DONE:
                self.done = True
            elif isinstance(item, BaseException):
                self.done = self.queue.get() is _DONE
                raise item
            else:
                yield item  # type: ignore[misc]

    def _sink(self, job: NewJob, text: str) -> None:
        self.pending.append((job, text))
        self.pending_bytes += len(text)
        if len(self.pending) >= CHUNK or self.pending_bytes >= CHUNK_BYTES:
            self._hand_over()

    def _hand_over(self) -> None:
        chunk, self.pending, self.pending_bytes = self.pending, [], 0
        self._put(chunk)

    def _put(self, item: object) -> None:
        while True:
            try:
                self.queue.put(item, timeout=0.05)
                return
            except queue.Full:
                if self.stop.is_set() and item is not _DONE:
                    raise _Stopped from None

    def _run(self) -> None:
        try:
            self.check(self)
            if self.pending:
                self._hand_over()
        except _Stopped:
            pass
        except BaseException as exc:  # handed to the caller's thread, raised there
            try:
                self._put(exc)
            except _Stopped:
                pass
        self._put(_DONE)  # always: the caller waits for it
