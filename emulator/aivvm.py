"""The Aivvm protocol: ``POST /api/chat`` answered with raw UTF-8 text in paced chunks.

Errors: 400 for any problem with the chat body (malformed JSON, a missing or ill-typed
field, an unknown model, a bad marker; ``error.param`` names the field), 413 for a body
over 1 MiB. The protocol has no events, so an ``error_event`` fault plays as a reset.
"""

from __future__ import annotations

import asyncio
from functools import lru_cache
from typing import Any

from emulator.config import EmulatorSettings
from emulator.faults import FaultBook
from emulator.pacing import COMPLETE, LEFT, Pacing, Receive, Send, Write, body_message, play
from emulator.request import MODELS, RequestError, parse_chat
from emulator.responses import (
    BLOCKED_PAGE,
    CHALLENGE_PAGE,
    TEXT_HEADERS,
    error,
    send_json,
    send_whole,
)
from emulator.stats import Stats
from emulator.text import answer_chunks

MODEL_LIST = [{"id": model_id, "name": name} for model_id, name in MODELS.items()]
_START = {"type": "http.response.start", "status": 200, "headers": TEXT_HEADERS}
_JSON_FAULTS = {
    "500": (500, "server_error", "The server had an error processing your request"),
    "503": (503, "server_error", "The server is overloaded, try again later"),
    "400": (400, "invalid_request_error", "The request was refused"),
    "401": (401, "invalid_request_error", "The key was refused"),
}


@lru_cache(maxsize=1024)
def _body_writes(seed: int, cyrillic: bool, chunks: int, size: int) -> tuple[Write, ...]:
    # Built once per distinct answer, so streaming allocates nothing per chunk.
    pieces = answer_chunks(seed, cyrillic, chunks, size)
    last = len(pieces) - 1
    return tuple((body_message(piece, i < last),) for i, piece in enumerate(pieces))


class AivvmChat:
    """Serves ``POST /api/chat`` for the emulator's settings, stats and fault book."""

    def __init__(self, settings: EmulatorSettings, stats: Stats, book: FaultBook) -> None:
        self.settings = settings
        self.stats = stats
        self.book = book

    async def reject(self, send: Send, exc: RequestError) -> None:
        """Answer a refused request."""
        self.stats.reject("aivvm")
        await send_json(send, exc.status, error(exc.message, param=exc.param))

    async def __call__(self, data: Any, receive: Receive, send: Send) -> None:
        """Answer one chat request whose body decoded to ``data``."""
        try:
            request = parse_chat(data)
        except RequestError as exc:
            await self.reject(send, exc)
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
            if fault in ("429", "403", "html", *_JSON_FAULTS):
                await self._whole_fault(send, fault, over.retry_after)
                return
            writes = _body_writes(
                request.seed,
                request.cyrillic,
                over.chunks or settings.chunks,
                over.chunk_size or settings.chunk_size,
            )
            delay = settings.delay_ms if over.delay_ms is None else over.delay_ms
            stall = settings.stall_seconds if over.stall_seconds is None else over.stall_seconds
            pacing = Pacing(
                delay / 1000,
                "reset" if fault == "error_event" else fault,
                over.after,
                stall,
            )
            # Learns of a disconnect while we sleep between chunks.
            watcher = asyncio.ensure_future(receive())
            try:
                outcome = await play(send, watcher, _START, writes, pacing)
            finally:
                watcher.cancel()
            if outcome == COMPLETE:
                self.stats.complete(over.tag)
            elif outcome == LEFT:
                self.stats.disconnected += 1
        finally:
            self.stats.finish()

    async def _whole_fault(self, send: Send, fault: str | None, retry_after: int | None) -> None:
        if fault == "429":
            seconds = self.settings.retry_after if retry_after is None else retry_after
            message = f"Rate limit reached (emulator fault 429); retry after {seconds} s."
            await send_json(
                send,
                429,
                error(message, "rate_limit_error"),
                [(b"retry-after", str(seconds).encode())],
            )
        elif fault in _JSON_FAULTS:
            status, kind, text = _JSON_FAULTS[fault]
            extra = []
            if fault == "503" and retry_after is not None:
                extra.append((b"retry-after", str(retry_after).encode()))
            await send_json(send, status, error(f"{text} (emulator fault {fault}).", kind), extra)
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
