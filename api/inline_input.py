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


_STARTS = ("start_map", "start_array")
_ENDS = ("end_map", "end_array")
_KINDS = {"start_map": "an object", "string": "a string", "number": "a number"}


def outline(spool: IO[bytes], backend: ModuleType) -> Outline:
    """The first pass: depth, top-level fields and the inline request count."""
    found = Outline()
    depth = 0
    key: str | None = None
    builder: ObjectBuilder | None = None
    size = 0
    spool.seek(0)
    for event, value in backend.basic_parse(spool, use_float=True):
        if depth == 0:
            if event != "start_map":
                raise ApiError("the body must be a JSON object", param="body")
            depth = 1
            continue
        if depth == 1 and event == "map_key":
            key, size = value, 0
            builder = _start_field(found, key)
            continue
        if event in _STARTS:
            depth += 1
            if depth > MAX_DEPTH:
                raise ApiError(f"the body nests deeper than {MAX_DEPTH} levels", param="body")
        if key == "requests":
            _count_request(found, event, depth)
        elif builder is not None:
            size += 1
            if size > MAX_FIELD_EVENTS:
                raise ApiError(f"{key} is too large", param=key)
            builder.event(event, value)
        if event in _ENDS:
            depth -= 1
        if depth == 1 and builder is not None and key is not None:
            found.fields[key], builder = builder.value, None
    return found


def _start_field(found: Outline, key: str) -> ObjectBuilder | None:
    """A builder for the value of a top-level field that is kept, else None."""
    if key == "requests":
        found.has_requests, found.requests_kind, found.count = True, "", 0
    return ObjectBuilder() if key in FIELDS else None


def _count_request(found: Outline, event: str, depth: int) -> None:
    if not found.requests_kind:
        found.requests_kind = "array" if event == "start_array" else _KINDS.get(event, event)
    elif found.requests_kind == "array" and (
        (event in _STARTS and depth == 3) or (event not in _STARTS + _ENDS and depth == 2)
    ):
        found.count += 1


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
