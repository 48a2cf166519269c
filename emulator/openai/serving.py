"""One valid ``/v1`` call from start to end: its fault, its pacing, its answer on the wire.

Streamed answers are ``text/event-stream``, one network write per piece of the answer.
Answers not streamed take as long as the stream would have, then go out whole; a reset or
a stall then plays half way through the body, and an ``error_event`` becomes a 500.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any, Protocol

from emulator.config import EmulatorSettings
from emulator.faults import FaultBook, Overrides
from emulator.openai import chat, completions, responses_api
from emulator.openai.answer import answer
from emulator.openai.calls import Call
from emulator.openai.embeddings import EmbeddingCall
from emulator.openai.embeddings import whole as embeddings_whole
from emulator.openai.errors import WHOLE_FAULTS, error_body, send_fault
from emulator.openai.sse import CONTENT_TYPE, DONE, Event, frame
from emulator.pacing import (
    COMPLETE,
    LEFT,
    Message,
    Pacing,
    Receive,
    Send,
    Write,
    body_message,
    cut_index,
    left_within,
    play,
)
from emulator.responses import EMULATOR_HEADERS
from emulator.stats import Stats

ERROR_EVENT_MESSAGE = (
    "The server had an error while streaming the answer (emulator fault error_event)."
)


class Framer(Protocol):
    """What each generating endpoint's module provides."""

    def whole(self, call: Call, ident: str, created: int, chunks: int, size: int) -> Any:
        """The whole answer object."""

    def stream_events(
        self, call: Call, ident: str, created: int, chunks: int, size: int
    ) -> list[list[Event]]:
        """The stream's events, grouped by network write."""


_FRAMERS: dict[str, Framer] = {"chat": chat, "completion": completions, "response": responses_api}
_ID_PREFIXES = {"chat": "chatcmpl-", "completion": "cmpl-", "response": "resp_"}


def _headers(content_type: bytes, ident: str | None) -> list[tuple[bytes, bytes]]:
    headers = [(b"content-type", content_type), (b"cache-control", b"no-cache"), *EMULATOR_HEADERS]
    if ident is not None:
        headers.append((b"x-request-id", ident.encode()))
    return headers


def _error_events(
    call: Call, ident: str, created: int, events: list[list[Event]], cut: int
) -> list[Event]:
    if call.kind == "response":
        sent = sum(len(group) for group in events[:cut])
        return responses_api.error_events(call, ident, created, sent, ERROR_EVENT_MESSAGE)
    # As vLLM ends a failed stream: the error as a data event, then [DONE].
    body = error_body(ERROR_EVENT_MESSAGE, "server_error")
    return [(None, json.dumps(body).encode()), DONE]


class Serving:
    """Plays valid calls for the emulator's settings, stats and fault book."""

    def __init__(self, settings: EmulatorSettings, stats: Stats, book: FaultBook) -> None:
        self.settings = settings
        self.stats = stats
        self.book = book

    async def _begin(self, over: Overrides, fingerprint: bytes) -> str | None:
        """Count the call, pick its fault, wait out the time to first byte."""
        fault = self.book.decide(fingerprint, over)
        self.stats.start(over.tag, "openai")
        if fault is not None:
            self.stats.faulted[fault] += 1
        ttfb = self.settings.ttfb_ms if over.ttfb_ms is None else over.ttfb_ms
        if ttfb:
            await asyncio.sleep(ttfb / 1000)
        return fault

    async def _whole_fault(self, send: Send, fault: str, over: Overrides) -> None:
        kind = "500" if fault == "error_event" else fault
        await send_fault(send, kind, over.retry_after, self.settings.retry_after)

    def _pacing(self, over: Overrides, fault: str | None) -> Pacing:
        settings = self.settings
        delay = settings.delay_ms if over.delay_ms is None else over.delay_ms
        stall = settings.stall_seconds if over.stall_seconds is None else over.stall_seconds
        return Pacing(delay / 1000, fault, over.after, stall)

    async def embeddings(self, call: EmbeddingCall, receive: Receive, send: Send) -> None:
        """Answer an embeddings call."""
        over = call.overrides
        try:
            fault = await self._begin(over, call.fingerprint)
            if fault in WHOLE_FAULTS or fault == "error_event":
                await self._whole_fault(send, str(fault), over)
                return
            body = json.dumps(embeddings_whole(call)).encode()
            pacing = self._pacing(over, fault)
            await self._send_whole(receive, send, body, 0.0, pacing, over.tag, None)
        finally:
            self.stats.finish()

    async def generate(self, call: Call, receive: Receive, send: Send) -> None:
        """Answer a chat, completions or responses call, streamed or whole."""
        over = call.overrides
        try:
            fault = await self._begin(over, call.fingerprint)
            if fault in WHOLE_FAULTS or (fault == "error_event" and not call.stream):
                await self._whole_fault(send, str(fault), over)
                return
            chunks = over.chunks or self.settings.chunks
            size = over.chunk_size or self.settings.chunk_size
            ident, created = _ID_PREFIXES[call.kind] + os.urandom(12).hex(), int(time.time())
            framer = _FRAMERS[call.kind]
            pacing = self._pacing(over, fault)
            if not call.stream:
                whole = framer.whole(call, ident, created, chunks, size)
                body = json.dumps(whole, ensure_ascii=False).encode()
                pieces = max(len(answer(s, call.shape, chunks, size).pieces) for s in call.seeds)
                wait = pacing.delay * max(pieces - 1, 0)
                await self._send_whole(receive, send, body, wait, pacing, over.tag, ident)
                return
            events = framer.stream_events(call, ident, created, chunks, size)
            writes = frame(events, over.sse)
            tail: tuple[Write, ...] = ()
            if fault == "error_event":
                cut = cut_index(pacing, len(writes))
                tail = frame([_error_events(call, ident, created, events, cut)], over.sse)
            headers = _headers(CONTENT_TYPE, ident)
            start = {"type": "http.response.start", "status": 200, "headers": headers}
            await self._play(receive, send, start, writes, pacing, tail, over.tag)
        finally:
            self.stats.finish()

    async def _send_whole(
        self,
        receive: Receive,
        send: Send,
        body: bytes,
        wait: float,
        pacing: Pacing,
        tag: str | None,
        ident: str | None,
    ) -> None:
        """A JSON answer after ``wait`` seconds; a reset or stall plays halfway through it."""
        headers = _headers(b"application/json", ident)
        headers.append((b"content-length", str(len(body)).encode()))
        start = {"type": "http.response.start", "status": 200, "headers": headers}
        if pacing.fault in ("reset", "stall"):
            half = len(body) // 2
            writes: tuple[Write, ...] = (
                (body_message(body[:half], True),),
                (body_message(body[half:], False),),
            )
            pacing = Pacing(0.0, pacing.fault, 1, pacing.stall)
        else:
            writes = ((body_message(body, False),),)
            pacing = Pacing()
        await self._play(receive, send, start, writes, pacing, (), tag, wait)

    async def _play(
        self,
        receive: Receive,
        send: Send,
        start: Message,
        writes: tuple[Write, ...],
        pacing: Pacing,
        tail: tuple[Write, ...],
        tag: str | None,
        wait: float = 0.0,
    ) -> None:
        # Learns of a disconnect while we sleep between writes.
        watcher = asyncio.ensure_future(receive())
        try:
            if await left_within(watcher, wait):
                outcome = LEFT
            else:
                outcome = await play(send, watcher, start, writes, pacing, tail)
        finally:
            watcher.cancel()
        if outcome == COMPLETE:
            self.stats.complete(tag, "openai")
        elif outcome == LEFT:
            self.stats.disconnected += 1
