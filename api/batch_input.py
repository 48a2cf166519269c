"""The requests of a new batch: validated whole before anything is written.

Two sources, one set of rules: inline requests of the native API (numbered from 1 as
``requests[i]``) and the lines of an uploaded JSONL file (numbered as file lines), each
line an OpenAI batch line ``{custom_id, method, url, body: {model, messages, ...}}`` or a
native request ``{custom_id, messages, model?, temperature?, system_message?}``. Every
problem is collected, so the caller hears about all of its bad lines at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from api.errors import BadRequests, LineProblem
from models.batches import NewJob

ROLES = ("system", "developer", "user", "assistant")
OPENAI_URL = "/v1/chat/completions"
MAX_CUSTOM_ID = 512
MAX_MODEL = 64
DEFAULT_MODEL = "gpt-3.5-turbo"


@dataclass(frozen=True, slots=True)
class Defaults:
    """Batch-level values for requests that do not set their own."""

    model: str = DEFAULT_MODEL
    temperature: float | None = None
    system_message: str | None = None


@dataclass(frozen=True, slots=True)
class Limits:
    """How many requests a batch may hold, and how large one request may be."""

    max_requests: int
    max_request_bytes: int


class _Bad(ValueError):
    """One request's problem (the message names the field)."""


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
        except _Bad as exc:
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


def request_from(obj: Any, defaults: Defaults) -> NewJob:
    """One request, from an OpenAI batch line or a native request object."""
    if not isinstance(obj, dict):
        raise _Bad("a request must be a JSON object")
    custom_id = obj.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id.strip():
        raise _Bad("custom_id must be a non-empty string")
    if len(custom_id) > MAX_CUSTOM_ID:
        raise _Bad(f"custom_id is longer than {MAX_CUSTOM_ID} characters")
    if "body" in obj:
        body = _openai_body(obj)
    elif "messages" in obj:
        body = obj
    else:
        raise _Bad("neither a native request (with messages) nor an OpenAI batch line (with body)")
    return NewJob(
        custom_id=custom_id,
        model=_model(body.get("model"), defaults),
        messages=_messages(body.get("messages")),
        temperature=_temperature(body.get("temperature"), defaults),
        system_message=_system_message(body.get("system_message"), defaults),
    )


def _openai_body(obj: dict[str, Any]) -> dict[str, Any]:
    method = obj.get("method", "POST")
    if not isinstance(method, str) or method.upper() != "POST":
        raise _Bad(f"method must be POST, not {method!r}")
    if obj.get("url", OPENAI_URL) != OPENAI_URL:
        raise _Bad(f"url must be {OPENAI_URL}, not {obj.get('url')!r}")
    body = obj["body"]
    if not isinstance(body, dict):
        raise _Bad("body must be a JSON object")
    if body.get("stream"):
        raise _Bad("body.stream is not supported in a batch")
    return body


def _model(model: Any, defaults: Defaults) -> str:
    if model is None:
        return defaults.model
    if not isinstance(model, str) or not model.strip() or len(model) > MAX_MODEL:
        raise _Bad(f"model must be a non-empty string of at most {MAX_MODEL} characters")
    return model


def _messages(messages: Any) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise _Bad("messages must be a non-empty list")
    out: list[dict[str, str]] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise _Bad(f"messages[{i}] must be an object with role and content")
        role = message.get("role")
        if role not in ROLES:
            raise _Bad(f"messages[{i}].role must be one of {', '.join(ROLES)}")
        out.append({"role": str(role), "content": _content(message.get("content"), i)})
    return out


def _content(content: Any, i: int) -> str:
    """A message's text; OpenAI's list of text parts is joined into one string."""
    if isinstance(content, str):
        return content
    if isinstance(content, list) and all(
        isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        for p in content
    ):
        return "".join(p["text"] for p in content)
    raise _Bad(f"messages[{i}].content must be a string (or a list of text parts)")


def _temperature(value: Any, defaults: Defaults) -> float | None:
    if value is None:
        return defaults.temperature
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 2:
        raise _Bad("temperature must be a number from 0 to 2")
    return float(value)


def _system_message(value: Any, defaults: Defaults) -> str | None:
    if value is None:
        return defaults.system_message
    if not isinstance(value, str):
        raise _Bad("system_message must be a string")
    return value
