"""Whole (non-streamed) responses: JSON bodies, error objects and the anti-bot pages."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

Send = Callable[[dict[str, Any]], Awaitable[None]]

# On every response of both protocols, so nobody mistakes the emulator for a real service.
EMULATOR_HEADERS = [(b"x-aivvm-emulator", b"aivbatch"), (b"x-aivbatch-emulator", b"aivbatch")]
TEXT_HEADERS = [(b"content-type", b"text/plain; charset=utf-8"), *EMULATOR_HEADERS]

# What an anti-bot wall in front of a chat site answers with (status 403).
CHALLENGE_PAGE = b"""<!DOCTYPE html>
<html lang="en-US"><head><title>Just a moment...</title>
<meta http-equiv="Content-Type" content="text/html; charset=UTF-8">
<meta name="robots" content="noindex,nofollow"></head>
<body><div class="main-wrapper" role="main"><div class="main-content">
<h1>chat.aivvm.com</h1><h2>Checking if the site connection is secure</h2>
<noscript>Enable JavaScript and cookies to continue</noscript>
<p>chat.aivvm.com needs to review the security of your connection before proceeding.</p>
<!-- served by the aivbatch Aivvm emulator (fault=403) -->
</div></div></body></html>
"""

# The same kind of wall served with 200, which a client must not take for an answer.
BLOCKED_PAGE = b"""<!DOCTYPE html>
<html lang="en-US"><head><title>Attention Required!</title>
<meta http-equiv="Content-Type" content="text/html; charset=UTF-8"></head>
<body><div id="challenge-body"><h1>Sorry, you have been blocked</h1>
<p>Please enable cookies and JavaScript and reload the page.</p>
<!-- served by the aivbatch Aivvm emulator (fault=html) -->
</div></body></html>
"""


async def send_whole(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """Send a complete response with a Content-Length."""
    headers = [
        (b"content-type", content_type),
        (b"content-length", str(len(body)).encode()),
        *EMULATOR_HEADERS,
        *(extra or ()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def send_json(
    send: Send, status: int, data: Any, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    """Send ``data`` as a JSON response."""
    body = json.dumps(data, ensure_ascii=False).encode()
    await send_whole(send, status, body, b"application/json", extra)


def error(
    message: str,
    kind: str = "invalid_request_error",
    param: str | None = None,
    code: str | None = None,
) -> Any:
    """An error object in the shape OpenAI-style clients expect."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}
