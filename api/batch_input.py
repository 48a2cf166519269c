"""The requests of a new batch: validated whole before anything is written.

Two sources, one set of rules (models/requests.py): inline requests of the native API
(``request 1``, ``request 2``, …) and the lines of an uploaded JSONL file (numbered as file
lines). Every problem is collected, so the caller hears about all its bad lines at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from api.errors import BadRequests, LineProblem
from models.batches import NewJob
from models.requests import Defaults, InvalidRequest, request_from


@dataclass(frozen=True, slots=True)
class Limits:
    """How many requests a batch may hold, and how large one request may be."""

    max_requests: int
    max_request_bytes: int


def parse_jsonl(data: bytes, defaults: Defaults, limits: Limits) -> list[NewJob]:
    """The requests of a JSONL file; raises BadRequests naming every bad line."""
    lines = [(n, raw) for n, raw in enumerate(data.split(b"\n"), start=1) if raw.strip()]
    _check_count(len(lines), limits)
    return _collect(_decode_lines(lines, limits), defaults, label="line")


def parse_inline(requests: list[Any], defaults: Defaults, limits: Limits) -> list[NewJob]:
    """The inline requests of a native create call; raises BadRequests naming each one."""
    _check_count(len(requests), limits)

    def numbered() -> Iterator[tuple[int, Any, LineProblem | None]]:
        for n, obj in enumerate(requests, start=1):
            size = len(json.dumps(obj, ensure_ascii=False).encode())
            yield n, obj, _size_problem(n, size, limits)

    return _collect(numbered(), defaults, label="request")


def _check_count(count: int, limits: Limits) -> None:
    if count == 0:
        raise BadRequests([LineProblem(1, "a batch needs at least one request")])
    if count > limits.max_requests:
        raise BadRequests.too_many(count, limits.max_requests)


def _size_problem(n: int, size: int, limits: Limits) -> LineProblem | None:
    if size <= limits.max_request_bytes:
        return None
    message = (
        f"the request is {size} bytes, over the limit of {limits.max_request_bytes}"
        " (AIVBATCH_MAX_REQUEST_BYTES)"
    )
    return LineProblem(n, message, "too_large")


def _decode_lines(
    lines: Iterable[tuple[int, bytes]], limits: Limits
) -> Iterator[tuple[int, Any, LineProblem | None]]:
    for n, raw in lines:
        if problem := _size_problem(n, len(raw), limits):
            yield n, None, problem
            continue
        try:
            yield n, json.loads(raw), None
        except UnicodeDecodeError:
            yield n, None, LineProblem(n, "not UTF-8 text")
        except json.JSONDecodeError as exc:
            yield n, None, LineProblem(n, f"not valid JSON ({exc.msg} at column {exc.colno})")


def _collect(
    numbered: Iterable[tuple[int, Any, LineProblem | None]], defaults: Defaults, *, label: str
) -> list[NewJob]:
    jobs: list[NewJob] = []
    problems: list[LineProblem] = []
    first_use: dict[str, int] = {}
    for n, obj, problem in numbered:
        if problem is not None:
            problems.append(problem)
            continue
        try:
            job = request_from(obj, defaults)
        except InvalidRequest as exc:
            problems.append(LineProblem(n, str(exc)))
            continue
        first = first_use.setdefault(job.custom_id, n)
        if first != n:
            message = f"custom_id {job.custom_id!r} is already used by {label} {first}"
            problems.append(LineProblem(n, message, "duplicate"))
        jobs.append(job)
    if problems:
        raise BadRequests(problems, label=label)
    return jobs
