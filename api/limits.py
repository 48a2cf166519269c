"""The body size limit, enforced on the bytes as they arrive.

The limit is the caller's: api/auth.py settles it before this runs (a caller with a valid
key may send ``AIVBATCH_MAX_BODY_BYTES``, anyone else ``AIVBATCH_ANONYMOUS_MAX_BODY_BYTES``).
A Content-Length over it is refused before the body is read; a chunked body (no
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
    """ASGI middleware answering 413 ``body_too_large`` for bodies over the caller's limit."""

    def __init__(self, app: ASGIApp, max_bytes: int, anonymous_max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.anonymous_max_bytes = anonymous_max_bytes

    def _refusal(self, limit: int) -> BodyTooLarge:
        setting = (
            "AIVBATCH_MAX_BODY_BYTES"
            if limit == self.max_bytes
            else "AIVBATCH_ANONYMOUS_MAX_BODY_BYTES, without a valid key"
        )
        return BodyTooLarge(f"the request body is over {limit} bytes ({setting})", param="body")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = int(scope.get("state", {}).get("body_limit", self.anonymous_max_bytes))
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._answer(limit, scope, receive, send)
            return
        seen = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise _Overflow(413, self._refusal(limit).message)
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
            await self._answer(limit, scope, receive, send)

    async def _answer(self, limit: int, scope: Scope, receive: Receive, send: Send) -> None:
        err = self._refusal(limit)
        response = error_response(err.status, err.code, err.message, err.param)
        # The client may still be sending; the connection closes after the answer.
        response.headers["Connection"] = "close"
        await response(scope, receive, send)
