"""The emulator as a bare ASGI app: routing, validation errors, paced answers and faults.

Routes: ``POST /api/chat`` (the answer, streamed as raw UTF-8 text in chunks),
``GET /api/models``, ``GET /_emulator/stats`` and ``POST /_emulator/reset``.
Errors: 400 for any problem with the chat body (malformed JSON, a missing or ill-typed
field, an unknown model, a bad marker; ``error.param`` names the field), 413 for a body
over 1 MiB, 404 for an unknown path, 405 for a wrong method. No framework: each chunk
costs one ``send`` and one timer, so one process holds a thousand streams.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from functools import lru_cache
from typing import Any

from emulator.config import EmulatorSettings
from emulator.faults import FaultBook, Overrides
from emulator.request import MODELS, RequestError, parse_chat
from emulator.responses import (
    BLOCKED_PAGE,
    CHALLENGE_PAGE,
    TEXT_HEADERS,
    Send,
    error,
    send_json,
    send_whole,
)
from emulator.stats import Stats
from emulator.text import answer_chunks

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]

MAX_BODY = 1 << 20
MODEL_LIST = [{"id": model_id, "name": name} for model_id, name in MODELS.items()]
_START = {"type": "http.response.start", "status": 200, "headers": TEXT_HEADERS}
_ROUTES = {
    "/api/chat": "POST",
    "/api/models": "GET",
    "/_emulator/stats": "GET",
    "/_emulator/reset": "POST",
}


class EmulatedReset(Exception):
    """Raised mid-body on purpose: the server then drops the connection, body unfinished."""


@lru_cache(maxsize=1024)
def _body_messages(seed: int, cyrillic: bool, chunks: int, size: int) -> tuple[dict[str, Any], ...]:
    # Built once per distinct answer, so streaming allocates nothing per chunk.
    pieces = answer_chunks(seed, cyrillic, chunks, size)
    last = len(pieces) - 1
    return tuple(
        {"type": "http.response.body", "body": piece, "more_body": i < last}
        for i, piece in enumerate(pieces)
    )


async def _read_body(receive: Receive) -> bytes | None:
    """The request body, or None if the client left; RequestError past MAX_BODY."""
    message = await receive()
    parts: list[bytes] = []
    size = 0
    while message["type"] == "http.request":
        part = message.get("body", b"")
        size += len(part)
        if size > MAX_BODY:
            raise RequestError("body", f"the body is over {MAX_BODY} bytes", status=413)
        if not message.get("more_body"):
            # The usual case: one message holds the whole body, nothing to join.
            return b"".join([*parts, part]) if parts else part
        parts.append(part)
        message = await receive()
    return None


class Emulator:
    """The ASGI callable; one instance holds the settings, the stats and the fault book."""

    def __init__(self, settings: EmulatorSettings) -> None:
        self.settings = settings
        self.stats = Stats()
        self.book = FaultBook(settings)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one HTTP request (other scope types are not spoken here)."""
        if scope["type"] != "http":
            return
        path = scope["path"]
        method = _ROUTES.get(path)
        if method is None:
            await send_json(send, 404, error(f"no route {path}"))
        elif scope["method"] != method:
            allow = [(b"allow", method.encode())]
            await send_json(send, 405, error(f"{path} takes {method} only"), allow)
        elif path == "/api/chat":
            await self._chat(receive, send)
        elif path == "/api/models":
            await send_json(send, 200, MODEL_LIST)
        elif path == "/_emulator/stats":
            await send_json(send, 200, self.stats.snapshot())
        else:
            self.stats.clear()
            self.book.clear()
            await send_json(send, 200, {"reset": True})

    async def _chat(self, receive: Receive, send: Send) -> None:
        try:
            body = await _read_body(receive)
            if body is None:
                return
            request = parse_chat(body)
        except RequestError as exc:
            self.stats.rejected += 1
            await send_json(send, exc.status, error(exc.message, param=exc.param))
            return
        over, settings = request.overrides, self.settings
        fault = self.book.decide(request.fingerprint, over)
        self.stats.start(over.tag)
        try:
            if fault is not None:
                self.stats.faulted[fault] += 1
            ttfb = settings.ttfb_ms if over.ttfb_ms is None else over.ttfb_ms
            if ttfb:
                await asyncio.sleep(ttfb / 1000)
            if fault in ("429", "500", "403", "html"):
                await self._whole_fault(send, fault, over.retry_after)
                return
            chunks = over.chunks or settings.chunks
            messages = _body_messages(
                request.seed, request.cyrillic, chunks, over.chunk_size or settings.chunk_size
            )
            delay = settings.delay_ms if over.delay_ms is None else over.delay_ms
            await self._stream(receive, send, messages, delay / 1000, fault, over)
        finally:
            self.stats.finish()

    async def _whole_fault(self, send: Send, fault: str, retry_after: int | None) -> None:
        if fault == "429":
            seconds = self.settings.retry_after if retry_after is None else retry_after
            message = f"Rate limit reached (emulator fault 429); retry after {seconds} s."
            await send_json(
                send,
                429,
                error(message, "rate_limit_error"),
                [(b"retry-after", str(seconds).encode())],
            )
        elif fault == "500":
            message = "The server had an error processing your request (emulator fault 500)."
            await send_json(send, 500, error(message, "server_error"))
        elif fault == "403":
            await send_whole(
                send,
                403,
                CHALLENGE_PAGE,
                b"text/html; charset=UTF-8",
                [(b"cf-mitigated", b"challenge")],
            )
        else:
            await send_whole(send, 200, BLOCKED_PAGE, b"text/html; charset=UTF-8")

    async def _stream(
        self,
        receive: Receive,
        send: Send,
        messages: tuple[dict[str, Any], ...],
        delay: float,
        fault: str | None,
        over: Overrides,
    ) -> None:
        # One waiter per stream learns of a disconnect while we sleep between chunks
        # (uvicorn's send() stays silent after the client is gone).
        watcher = asyncio.ensure_future(receive())
        try:
            await send(_START)
            cut_at = -1
            if fault is not None:
                # The last chunk is always held back, so a reset leaves the body unfinished.
                cut_at = len(messages) // 2 if over.after is None else over.after
                cut_at = min(cut_at, len(messages) - 1)
            for i, message in enumerate(messages):
                if i == cut_at and not await self._play(fault, watcher, over.stall_seconds):
                    return
                if i and delay:
                    await asyncio.sleep(delay)
                if watcher.done():
                    self.stats.disconnected += 1
                    return
                await send(message)
            self.stats.complete(over.tag)
        finally:
            watcher.cancel()

    async def _play(
        self, fault: str | None, watcher: asyncio.Future[Any], stall: float | None
    ) -> bool:
        """Play a mid-body fault; True when the stream should go on afterwards."""
        if fault == "reset":
            raise EmulatedReset("emulator fault: reset mid-body")
        seconds = self.settings.stall_seconds if stall is None else stall
        done, _ = await asyncio.wait({watcher}, timeout=seconds)
        if done:
            self.stats.disconnected += 1
            return False
        return True


def create_app(settings: EmulatorSettings | None = None) -> Emulator:
    """Build the emulator app (settings from the environment unless given)."""
    return Emulator(settings or EmulatorSettings())
