"""The body size limit, enforced on the bytes as they arrive.

A Content-Length over the limit is refused before the body is read; a chunked body (no
Content-Length) is counted as it streams and refused the moment it passes the limit, so
nothing of it is parsed, spooled or written.
"""

from __future__ import annotations

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import BodyTooLarge, error_response


class _Overflow(HTTPException):
    """Raised into the app when the body passes the limit while being read.

    An HTTPException, because FastAPI turns any other error met while reading a body into
    a generic 400; this one it passes on, and api/errors.py answers it as a 413.
    """


class BodyLimit:
    """ASGI middleware answering 413 ``body_too_large`` for bodies over ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _refusal(self) -> BodyTooLarge:
        return BodyTooLarge(
            f"the request body is over {self.max_bytes} bytes (AIVBATCH_MAX_BODY_BYTES)",
            param="body",
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._answer(scope, receive, send)
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise _Overflow(413, self._refusal().message)
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counting_receive, tracking_send)
        except _Overflow:
            if started:
                raise
            await self._answer(scope, receive, send)

    async def _answer(self, scope: Scope, receive: Receive, send: Send) -> None:
        err = self._refusal()
        response = error_response(err.status, err.code, err.message, err.param)
        # The client may still be sending; the connection closes after the answer.
        response.headers["Connection"] = "close"
        await response(scope, receive, send)
