"""The requests of a new batch, checked one at a time as they are read.

Two sources, one set of rules (models/requests.py): the inline requests of the native API
(``request 1``, ``request 2``, …, api/inline_input.py) and the lines of a JSONL file
(numbered as file lines). ``Intake`` checks each request and hands the good ones on (to
the batch being written, or to nothing for an upload's check); every problem is
collected, so the caller hears about all its bad lines at once, and after the first one
nothing more is handed on: the caller rolls back.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from api.errors import BadRequests, LineProblem
from models.batches import NewJob, messages_json
from models.requests import Defaults, InvalidRequest, request_with_text
from models.routing import Routing

# Called with each good request and its messages as JSON text.
Sink = Callable[[NewJob, str], None]


@dataclass(frozen=True, slots=True)
class Limits:
    """How many requests a batch may hold, and how large one request may be."""

    max_requests: int
    max_request_bytes: int


def utf8_size(text: str) -> int:
    """Bytes of ``text`` in UTF-8 (without encoding it when it is ASCII)."""
    return len(text) if text.isascii() else len(text.encode())


class Intake:
    """Checks the requests of one batch in order; see the module docstring."""

    def __init__(
        self,
        defaults: Defaults,
        limits: Limits,
        *,
        label: str,
        sink: Sink | None = None,
        batch_system_message: str | None = None,
        routing: Routing | None = None,
    ) -> None:
        self.defaults = defaults
        # With a routing table, a request no upstream can serve is a bad line too.
        self.routing = routing
        self.limits = limits
        self.label = label
        self.sink = sink
        self.inherited_bytes = utf8_size(batch_system_message or "")
        self.problems: list[LineProblem] = []
        self.first_use: dict[str, int] = {}
        self.count = 0

    @property
    def failed(self) -> bool:
        """Whether a problem has been found (nothing is handed on after it)."""
        return bool(self.problems)

    def _counted(self) -> None:
        self.count += 1
        if self.count > self.limits.max_requests:
            raise BadRequests.too_many(self.count, self.limits.max_requests, exact=False)

    def refuse(self, problem: LineProblem) -> None:
        """Record a problem found before the request could be decoded."""
        self._counted()
        self.problems.append(problem)

    def take(self, n: int, obj: Any) -> None:
        """Check the request numbered ``n``; hand it on if it and all before it are good."""
        self._counted()
        try:
            job, text = request_with_text(obj, self.defaults, self.routing)
        except InvalidRequest as exc:
            self.problems.append(LineProblem(n, str(exc), exc.kind))
            return
        first = self.first_use.setdefault(job.custom_id, n)
        if first != n:
            message = f"custom_id {job.custom_id!r} is already used by {self.label} {first}"
            self.problems.append(LineProblem(n, message, "duplicate"))
            return
        size = utf8_size(text) + (utf8_size(messages_json(job.params)) if job.params else 0)
        size += utf8_size(job.system_message) if job.system_message else self.inherited_bytes
        if size > self.limits.max_request_bytes:
            self.problems.append(_too_large(n, f"the request is {size} bytes", self.limits))
            return
        if self.sink is not None and not self.problems:
            self.sink(job, text)

    def finish(self) -> int:
        """How many requests there were; raises BadRequests naming every bad one."""
        if self.count == 0:
            raise BadRequests([LineProblem(1, "a batch needs at least one request")])
        if self.problems:
            raise BadRequests(self.problems, label=self.label)
        return self.count


def _too_large(n: int, what: str, limits: Limits) -> LineProblem:
    # A request's size: its messages as JSON and its system message (its own or the batch's).
    message = f"{what}, over the limit of {limits.max_request_bytes} (AIVBATCH_MAX_REQUEST_BYTES)"
    return LineProblem(n, message, "too_large")


def read_lines(pieces: Iterable[bytes], max_line: int) -> Iterator[tuple[int, bytes | None]]:
    """The non-blank lines of a byte stream, numbered from 1; None for a line over
    ``max_line`` bytes, which is skipped without being held."""
    n = 0
    held = b""
    skipping = False
    for piece in pieces:
        start = 0
        while True:
            end = piece.find(b"\n", start)
            if end < 0:
                if not skipping:
                    held += piece[start:]
                    if len(held) > max_line:
                        held, skipping = b"", True
                break
            n += 1
            if skipping:
                yield n, None
            else:
                line = held + piece[start:end]
                if line.strip():
                    yield (n, line) if len(line) <= max_line else (n, None)
            held, skipping = b"", False
            start = end + 1
    if skipping or held.strip():
        n += 1
        yield (n, None) if skipping or len(held) > max_line else (n, held)


def take_jsonl(intake: Intake, pieces: Iterable[bytes]) -> int:
    """Feed every line of a JSONL byte stream to ``intake``; returns the request count."""
    limits = intake.limits
    for n, raw in read_lines(pieces, limits.max_request_bytes):
        if raw is None:
            intake.refuse(_too_large(n, "the line is longer", limits))
            continue
        try:
            obj = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError:
            intake.refuse(LineProblem(n, "not UTF-8 text"))
            continue
        except json.JSONDecodeError as exc:
            intake.refuse(LineProblem(n, f"not valid JSON ({exc.msg} at column {exc.colno})"))
            continue
        except RecursionError:
            intake.refuse(LineProblem(n, "not usable JSON (nested too deeply)"))
            continue
        intake.take(n, obj)
    return intake.finish()
