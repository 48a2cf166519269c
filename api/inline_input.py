"""The body of ``POST /v1/batches``, read from its spool in two streaming passes.

The first pass walks the JSON events only (ijson's ``basic_parse``): it refuses a body
nested deeper than ``MAX_DEPTH`` (ijson's prefix-building readers slow down with the
square of the depth), counts the inline requests, and keeps every top-level field but
``requests`` (the batch-level defaults may come after the requests, and they are needed
before the first request is written). The second pass (``requests``) builds one request
object at a time. Neither holds more than one request.

ijson's C reader is used unless the body needs Python's exact semantics: it turns a lone
UTF-16 surrogate escape (``"\\ud800"``) into other text instead of keeping it (so the
request rules could not refuse it, naming the field), and it cannot hold integers past 64
bits. Such bodies are read with ijson's pure-Python reader, which is exact and slower.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from types import ModuleType
from typing import IO, Any

import ijson
from ijson.common import IncompleteJSONError, JSONError, ObjectBuilder

from api.errors import ApiError

# Real requests nest about six levels deep; anything much deeper is not a batch.
MAX_DEPTH = 32
# Events a top-level field other than ``requests`` may take (metadata is 16 pairs).
MAX_FIELD_EVENTS = 1000
FIELDS = (
    "input_file_id",
    "endpoint",
    "completion_window",
    "metadata",
    "model",
    "temperature",
    "system_message",
)
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")
_FAST: ModuleType = ijson
_EXACT: ModuleType = ijson.get_backend("python")
_SCAN_CHUNK = 1024 * 1024


@dataclass
class Outline:
    """What the first pass found: the top-level fields, and how many inline requests."""

    fields: dict[str, Any] = field(default_factory=dict)
    has_requests: bool = False
    requests_kind: str = "array"
    count: int = 0


def _lone_surrogate(spool: IO[bytes]) -> bool:
    """Whether the body escapes a UTF-16 surrogate that is not half of a pair."""
    spool.seek(0)
    tail = b""
    found = False
    while chunk := spool.read(_SCAN_CHUNK):
        data = tail + chunk
        escapes = [m.start() for m in _SURROGATE_ESCAPE.finditer(data)]
        if any(not _paired(data, at, escapes) for at in escapes):
            found = True
            break
        tail = data[-16:]
    spool.seek(0)
    return found


def _paired(data: bytes, at: int, escapes: list[int]) -> bool:
    if _backslashes_before(data, at) % 2:
        return True  # an escaped backslash followed by "u…": not an escape at all
    high = data[at + 3 : at + 4].lower() in b"89ab"
    if high:
        return at + 6 in escapes and data[at + 3 + 6 : at + 4 + 6].lower() in b"cdef"
    return at - 6 in escapes and data[at - 3 : at - 2].lower() in b"89ab"


def _backslashes_before(data: bytes, at: int) -> int:
    count = 0
    while at - count - 1 >= 0 and data[at - count - 1] == 0x5C:
        count += 1
    return count


def _invalid_json(exc: Exception) -> ApiError:
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ApiError(f"the body is not valid JSON ({detail})", param="body")


_STEP = {"start_map": 1, "start_array": 1, "end_map": -1, "end_array": -1}
_OPENS = frozenset(("start_map", "start_array"))
_CLOSES = frozenset(("end_map", "end_array"))
_KINDS = {
    "start_array": "array",
    "start_map": "an object",
    "string": "a string",
    "number": "a number",
    "boolean": "a boolean",
}


class _Fields:
    """The first pass's handling of the events near the top (see ``outline``)."""

    def __init__(self, found: Outline) -> None:
        self.found = found
        self.key: str | None = None
        self.builder: ObjectBuilder | None = None
        self.size = 0
        self.items = 0  # requests that are objects or arrays, counted as they open

    def take(self, event: str, value: Any, depth: int, step: int) -> None:
        """An event at depth 2 or less, or inside a kept field's value."""
        found = self.found
        if depth <= 1 and step > 0 and self.key is None:
            if event != "start_map":
                raise ApiError("the body must be a JSON object", param="body")
        elif depth == 1 and event == "map_key":
            self.key, self.size = value, 0
            self.builder = ObjectBuilder() if value in FIELDS else None
            if value == "requests":
                found.has_requests, found.requests_kind, found.count = True, "", 0
                self.items = 0
        elif self.key == "requests":
            if not found.requests_kind:
                found.requests_kind = _KINDS.get(event, event)
            elif depth == 2 and step == 0:
                found.count += 1  # a request that is not an object (refused later)
        elif self.builder is not None:
            self.size += 1
            if self.size > MAX_FIELD_EVENTS:
                raise ApiError(f"{self.key} is too large", param=self.key)
            self.builder.event(event, value)

    def closed(self, event: str, depth: int, step: int) -> None:
        """After the event: a top-level value may be complete."""
        if depth != 1 or self.key is None or event == "map_key":
            return
        if self.builder is not None:
            self.found.fields[self.key], self.builder = self.builder.value, None
        elif self.key == "requests" and self.found.requests_kind == "array" and step < 0:
            self.found.count += self.items


def outline(spool: IO[bytes], backend: ModuleType) -> Outline:
    """The first pass: depth, top-level fields and the inline request count.

    Called for every event of the body, so the loop does as little as it can for the
    events inside the requests (depth 3 and more), which are nearly all of them.
    """
    found = Outline()
    fields = _Fields(found)
    depth = 0
    # Inside a request (deeper than 2, no field being kept) only the depth matters: those
    # events, nearly all of them, take the short way.
    deep = False
    spool.seek(0)
    for event, value in backend.basic_parse(spool, use_float=True):
        if deep:
            if event in _OPENS:
                depth += 1
                if depth > MAX_DEPTH:
                    raise _too_deep()
            elif event in _CLOSES:
                depth -= 1
                deep = depth > 2
            continue
        step = _STEP.get(event, 0)
        if step > 0:
            depth += 1
            if depth > MAX_DEPTH:
                raise _too_deep()
            if depth == 3:
                fields.items += 1
        if depth > 2 and fields.builder is None:
            depth += min(step, 0)
            deep = depth > 2
            continue
        fields.take(event, value, depth, step)
        depth += min(step, 0)
        fields.closed(event, depth, step)
        deep = depth > 2 and fields.builder is None
    return found


def _too_deep() -> ApiError:
    return ApiError(f"the body nests deeper than {MAX_DEPTH} levels", param="body")


def read_outline(spool: IO[bytes]) -> tuple[Outline, ModuleType]:
    """The first pass, with the reader that the body needs (see the module docstring)."""
    backend = _EXACT if _lone_surrogate(spool) else _FAST
    try:
        return outline(spool, backend), backend
    except IncompleteJSONError as exc:
        if backend is _EXACT or "integer overflow" not in str(exc):
            raise _invalid_json(exc) from exc
    except (JSONError, UnicodeDecodeError) as exc:
        raise _invalid_json(exc) from exc
    try:
        return outline(spool, _EXACT), _EXACT
    except (JSONError, UnicodeDecodeError, ValueError) as exc:
        raise _invalid_json(exc) from exc


def requests(spool: IO[bytes], backend: ModuleType) -> Iterator[tuple[int, Any]]:
    """The second pass: each inline request, numbered from 1."""
    spool.seek(0)
    items = backend.items(spool, "requests.item", use_float=True)
    yield from enumerate(items, start=1)
