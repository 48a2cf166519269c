"""The emulator as a bare ASGI app: one process, one port, both protocols, introspection.

Routes: the Aivvm protocol (``POST /api/chat``, ``GET /api/models``; ``emulator.aivvm``),
the OpenAI protocol under ``/v1`` (``emulator.openai``), and for tests ``GET
/_emulator/stats``, ``GET /_emulator/requests?limit=N`` (the calls received, oldest first)
and ``POST /_emulator/reset`` (zero the stats, forget the fault counters and the calls).
Unknown paths get 404, wrong methods 405. No framework: the app reads each body once,
records it, and hands it to the protocol's handler.
"""

from __future__ import annotations

from typing import Any

from emulator.aivvm import MODEL_LIST, AivvmChat
from emulator.config import EmulatorSettings
from emulator.faults import FaultBook
from emulator.openai.routes import OpenAIRoutes
from emulator.pacing import EmulatedReset, Receive, Send
from emulator.record import RequestLog
from emulator.request import RequestError
from emulator.responses import error, send_json
from emulator.stats import Stats
from emulator.wire import BodyTooLarge, NotJson, load_json, query, read_body

__all__ = ["EmulatedReset", "Emulator", "create_app"]

Scope = dict[str, Any]

_ROUTES = {
    "/api/chat": "POST",
    "/api/models": "GET",
    "/_emulator/stats": "GET",
    "/_emulator/requests": "GET",
    "/_emulator/reset": "POST",
}


class Emulator:
    """The ASGI callable; one instance holds the settings, stats, fault book and call log."""

    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self.stats = Stats()
        self.book = FaultBook(settings)
        self.log = RequestLog()
        self.aivvm = AivvmChat(settings, self.stats, self.book)
        self.openai = OpenAIRoutes(settings, self.stats, self.book)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one HTTP request (other scope types are not spoken here)."""
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path.startswith("/_emulator/"):
            await self._introspect(scope, send)
            return
        data: Any = None
        problem: Exception | None = None
        if scope["method"] == "POST":
            try:
                body = await read_body(receive)
                if body is None:
                    return  # the client left before sending its body
                data = load_json(body)
            except (BodyTooLarge, NotJson) as exc:
                problem = exc
        self.log.add(scope, data)
        if path == "/v1" or path.startswith("/v1/"):
            await self.openai(scope, receive, send, data, problem)
            return
        method = _ROUTES.get(path)
        if method is None:
            await send_json(send, 404, error(f"no route {path}"))
        elif scope["method"] != method:
            await _not_allowed(send, path, method)
        elif path == "/api/models":
            await send_json(send, 200, MODEL_LIST)
        elif isinstance(problem, BodyTooLarge):
            await self.aivvm.reject(send, RequestError("body", str(problem), status=413))
        elif problem is not None:
            await self.aivvm.reject(
                send, RequestError("body", f"the body is not valid JSON: {problem}")
            )
        else:
            await self.aivvm(data, receive, send)

    async def _introspect(self, scope: Scope, send: Send) -> None:
        path = scope["path"]
        method = _ROUTES.get(path)
        if method is None:
            await send_json(send, 404, error(f"no route {path}"))
        elif scope["method"] != method:
            await _not_allowed(send, path, method)
        elif path == "/_emulator/stats":
            await send_json(send, 200, self.stats.snapshot())
        elif path == "/_emulator/requests":
            raw = query(scope).get("limit")
            if raw is not None and not (raw.isdigit() and int(raw) >= 1):
                message = f"limit must be a whole number from 1, not {raw!r}"
                await send_json(send, 400, error(message, param="limit"))
                return
            await send_json(send, 200, self.log.recent(None if raw is None else int(raw)))
        else:
            self.stats.clear()
            self.book.clear()
            self.log.clear()
            await send_json(send, 200, {"reset": True})


async def _not_allowed(send: Send, path: str, method: str) -> None:
    allow = [(b"allow", method.encode())]
    await send_json(send, 405, error(f"{path} takes {method} only"), allow)


def create_app(settings: EmulatorSettings | None = None) -> Emulator:
    """Build the emulator app (settings from the environment unless given)."""
    return Emulator(settings or EmulatorSettings())
