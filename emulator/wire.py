"""Reading a request off the wire: its body (bounded), the body's JSON, the query string."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qs

from emulator.pacing import Receive

MAX_BODY = 1 << 20


class BodyTooLarge(Exception):
    """The request body is over MAX_BODY bytes."""


class NotJson(Exception):
    """The request body is not a JSON document; the message says why."""


async def read_body(receive: Receive) -> bytes | None:
    """The request body, or None if the client left; BodyTooLarge past MAX_BODY."""
    message = await receive()
    parts: list[bytes] = []
    size = 0
    while message["type"] == "http.request":
        part = message.get("body", b"")
        size += len(part)
        if size > MAX_BODY:
            raise BodyTooLarge(f"the body is over {MAX_BODY} bytes")
        if not message.get("more_body"):
            # The usual case: one message holds the whole body, nothing to join.
            return b"".join([*parts, part]) if parts else part
        parts.append(part)
        message = await receive()
    return None


def load_json(body: bytes) -> Any:
    """The body's JSON value; NotJson if it is not JSON (or not UTF-8)."""
    try:
        return json.loads(body)
    except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError alike
        raise NotJson(str(exc)) from None


def query(scope: dict[str, Any]) -> dict[str, str]:
    """The query string's parameters, the last value of each."""
    raw = scope.get("query_string", b"")
    if not raw:
        return {}
    return {k: v[-1] for k, v in parse_qs(raw.decode("latin-1")).items()}
