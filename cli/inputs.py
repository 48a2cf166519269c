"""Batch input files for `aivbatch submit`: native JSONL, OpenAI batch JSONL, or plain text.

Native lines are ``{"custom_id", "messages", "model"?, "temperature"?, "system_message"?}``;
OpenAI batch lines are ``{"custom_id", "method": "POST", "url": "/v1/chat/completions",
"body": {"model", "messages", ...}}``; a plain text file holds one prompt per line, whose
custom_id is ``line-<n>``. Every bad line is found before anything is sent.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from models.requests import Defaults, InvalidRequest, request_from

FORMATS = ("auto", "native", "openai", "text")
# Fields of an OpenAI request body that a native request carries over as they are.
CARRIED = ("model", "temperature")
MAX_REPORTED = 20


class InputError(Exception):
    """Lines of an input file that cannot be sent; ``problems`` pairs line numbers and reasons."""

    def __init__(self, problems: list[tuple[int, str]]) -> None:
        self.problems = problems
        shown = [f"line {n}: {why}" for n, why in problems[:MAX_REPORTED]]
        if len(problems) > MAX_REPORTED:
            shown.append(f"… and {len(problems) - MAX_REPORTED} more")
        super().__init__("\n".join(shown))


@dataclass
class Parsed:
    """The native requests of a file, and which format it was in."""

    format: str
    requests: list[dict[str, Any]] = field(default_factory=list)


def read_requests(path: Path, fmt: str = "auto") -> Parsed:
    """Parse ``path`` (UTF-8) into native requests, or raise InputError naming every bad line."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError([(text_line(path, exc.start), "not UTF-8 text")]) from exc
    return parse_lines(text.splitlines(), fmt)


def text_line(path: Path, offset: int) -> int:
    """The 1-based line number of a byte offset in a file."""
    return path.read_bytes()[:offset].count(b"\n") + 1


def parse_lines(lines: Iterable[str], fmt: str = "auto") -> Parsed:
    """Native requests from the lines of a file in ``fmt`` (``auto`` looks at the first line)."""
    numbered = [(n, line.strip()) for n, line in enumerate(lines, start=1) if line.strip()]
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}")
    if not numbered:
        raise InputError([(1, "the file holds no request")])
    if fmt == "auto":
        fmt = "jsonl" if numbered[0][1].startswith("{") else "text"
    if fmt == "text":
        return Parsed("text", [_prompt(n, line) for n, line in numbered])
    parsed = Parsed(fmt)
    problems: list[tuple[int, str]] = []
    seen: dict[str, int] = {}
    kinds: set[str] = set()
    for n, line in numbered:
        try:
            kind, request = _json_line(line, fmt)
        except ValueError as exc:
            problems.append((n, str(exc)))
            continue
        first = seen.setdefault(request["custom_id"], n)
        if first != n:
            problems.append(
                (n, f"custom_id {request['custom_id']!r} is already used on line {first}")
            )
        kinds.add(kind)
        parsed.requests.append(request)
    if problems:
        raise InputError(problems)
    if parsed.format == "jsonl":
        parsed.format = "+".join(sorted(kinds))
    return parsed


def _prompt(n: int, line: str) -> dict[str, Any]:
    return {"custom_id": f"line-{n}", "messages": [{"role": "user", "content": line}]}


def _json_line(line: str, fmt: str) -> tuple[str, dict[str, Any]]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise ValueError("a line must be a JSON object")
    if fmt == "openai" or (fmt == "jsonl" and "body" in obj):
        return "openai", _from_openai(obj)
    if fmt == "native" or "messages" in obj:
        return "native", _native(obj)
    raise ValueError(
        "neither a native request (with messages) nor an OpenAI batch line (with body)"
    )


def _native(obj: dict[str, Any]) -> dict[str, Any]:
    _check(obj)
    return dict(obj)


def _from_openai(obj: dict[str, Any]) -> dict[str, Any]:
    if "body" not in obj:
        raise ValueError("an OpenAI batch line needs a body")
    _check(obj)
    body = obj["body"]
    request: dict[str, Any] = {"custom_id": obj["custom_id"], "messages": body["messages"]}
    request.update({k: body[k] for k in CARRIED if body.get(k) is not None})
    return request


def _check(obj: dict[str, Any]) -> None:
    """The server's own rules, so a bad line is named here before anything is sent."""
    try:
        request_from(obj, Defaults())
    except InvalidRequest as exc:
        raise ValueError(str(exc)) from None
