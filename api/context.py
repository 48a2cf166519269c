"""Every request's id, in its answer (``x-request-id``) and in the log lines about it.

The outermost middleware: it also writes the access log line, and ends a streamed answer
that SQL or Redis cut short with one log line per outage rather than a traceback.
"""

from __future__ import annotations

import logging
import sys
import time
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import Unavailable
from api.outages import Outages, service_of

log = logging.getLogger("api.access")


def configure_logging() -> None:
    """Send the API's own log lines (access, errors, outages) to stderr, once."""
    logger = logging.getLogger("api")
    if logger.handlers:
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def new_request_id() -> str:
    """A fresh request id."""
    return f"req_{uuid.uuid4().hex}"


def _shown_path(scope: Scope) -> str:
    """The path as sent (still percent-encoded), so no decoded newline splits a log line."""
    raw = scope.get("raw_path")
    return raw.decode("latin-1") if isinstance(raw, bytes) else repr(scope["path"])


class RequestContext:
    """ASGI middleware: request id, access log, and streams cut short by an outage."""

    def __init__(self, app: ASGIApp, outages: Outages) -> None:
        self.app = app
        self.outages = outages

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = new_request_id()
        state = scope.setdefault("state", {})
        state["request_id"] = request_id
        start = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception as exc:
            service = service_of(exc)
            if service is None:
                raise
            self.outages.down(service, exc)
            if status == 0:
                await Unavailable(service).response()(scope, receive, send_with_id)
            # Else the answer stays unfinished, so the client sees it was cut short.
        finally:
            log.info(
                "%s %s %s %.1fms request_id=%s tenant=%s",
                scope["method"],
                _shown_path(scope),
                status or "-",
                (time.perf_counter() - start) * 1000,
                request_id,
                state.get("tenant", "-"),
            )
