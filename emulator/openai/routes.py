"""The ``/v1`` routes: auth, validation, faults, pacing, and the answer of each endpoint.

Refusals: 401 when the emulator has an ``--api-key`` and the call lacks ``Authorization:
Bearer KEY``; 400 naming the field (``error.param``); 404 ``model_not_found`` for a model
not served; 413 for a body over 1 MiB; 404 for an unknown path, 405 for a wrong method.
Streamed answers are ``text/event-stream``; answers not streamed take as long as the
stream would have before they are sent whole.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from typing import Any

from emulator.config import EmulatorSettings
from emulator.faults import FaultBook, Overrides
from emulator.openai import chat, completions, embeddings, responses_api
from emulator.openai.answer import answer
from emulator.openai.calls import Call
from emulator.openai.completions import parse_completion
from emulator.openai.errors import WHOLE_FAULTS, OpenAIError, error_body, send_fault
from emulator.openai.responses_input import parse_response
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
    left_within,
    play,
)
from emulator.responses import EMULATOR_HEADERS, send_json
from emulator.stats import Stats
from emulator.wire import BodyTooLarge

# Models listed as created at one fixed time, so the listing never changes.
MODEL_CREATED = 1_700_000_000
_GENERATING = {
    "/v1/chat/completions": ("chat", chat.parse_chat, "chatcmpl-"),
    "/v1/completions": ("completion", parse_completion, "cmpl-"),
    "/v1/responses": ("response", parse_response, "resp_"),
}
_FRAMERS: dict[str, Any] = {"chat": chat, "completion": completions, "response": responses_api}
ERROR_EVENT_MESSAGE = (
    "The server had an error while streaming the answer (emulator fault error_event)."
)


def _headers(content_type: bytes, ident: str | None) -> list[tuple[bytes, bytes]]:
    headers = [(b"content-type", content_type), (b"cache-control", b"no-cache"), *EMULATOR_HEADERS]
    if ident is not None:
        headers.append((b"x-request-id", ident.encode()))
    return headers


def _cut_index(pacing: Pacing, writes: int) -> int:
    # As emulator.pacing.play places a mid-body fault.
    return min(writes // 2 if pacing.after is None else pacing.after, writes - 1)


class OpenAIRoutes:
    """Serves ``/v1`` for the emulator's settings, stats and fault book."""

    def __init__(self, settings: EmulatorSettings, stats: Stats, book: FaultBook) -> None:
        self.settings = settings
        self.stats = stats
        self.book = book
        self.models = {
            m: {
                "id": m,
                "object": "model",
                "created": MODEL_CREATED,
                "owned_by": "aivbatch-emulator",
            }
            for m in settings.openai_models
        }
        self.auth = f"Bearer {settings.api_key}".encode() if settings.api_key else None

    async def _refuse(self, send: Send, exc: OpenAIError) -> None:
        self.stats.reject("openai")
        await send_json(send, exc.status, exc.body())

    async def __call__(
        self,
        scope: dict[str, Any],
        receive: Receive,
        send: Send,
        data: Any,
        problem: Exception | None,
    ) -> None:
        """Serve one ``/v1`` request whose body decoded to ``data`` (or failed: ``problem``)."""
        path, method = scope["path"], scope["method"]
        if self.auth is not None:
            given = next((v for k, v in scope["headers"] if k == b"authorization"), None)
            if given != self.auth:
                message = (
                    "You didn't provide an API key. Send it as 'Authorization: Bearer KEY'."
                    if given is None
                    else "Incorrect API key provided."
                )
                await self._refuse(send, OpenAIError(message, None, "invalid_api_key", 401))
                return
        expected = "GET" if path == "/v1/models" or path.startswith("/v1/models/") else "POST"
        if path not in _GENERATING and path != "/v1/embeddings" and expected == "POST":
            await send_json(
                send, 404, error_body(f"Invalid URL ({method} {path})", "invalid_request_error")
            )
        elif method != expected:
            body = error_body(f"{path} takes {expected} only", "invalid_request_error")
            await send_json(send, 405, body, [(b"allow", expected.encode())])
        elif path == "/v1/models":
            await send_json(send, 200, {"object": "list", "data": list(self.models.values())})
        elif expected == "GET":
            found = self.models.get(path.removeprefix("/v1/models/"))
            if found is None:
                error = OpenAIError(
                    f"The model `{path[11:]}` does not exist.", "model", "model_not_found", 404
                )
                await send_json(send, 404, error.body())
            else:
                await send_json(send, 200, found)
        elif problem is not None:
            await self._refuse(send, _body_problem(problem))
        elif path == "/v1/embeddings":
            await self._embeddings(receive, send, data)
        else:
            await self._generate(path, receive, send, data)

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

    def _pacing(self, over: Overrides, fault: str | None) -> Pacing:
        settings = self.settings
        delay = settings.delay_ms if over.delay_ms is None else over.delay_ms
        stall = settings.stall_seconds if over.stall_seconds is None else over.stall_seconds
        return Pacing(delay / 1000, fault, over.after, stall)

    async def _embeddings(self, receive: Receive, send: Send, data: Any) -> None:
        try:
            call = embeddings.parse_embeddings(data, self.settings.openai_models)
        except OpenAIError as exc:
            await self._refuse(send, exc)
            return
        over = call.overrides
        try:
            fault = await self._begin(over, call.fingerprint)
            if fault in WHOLE_FAULTS or fault == "error_event":
                await send_fault(
                    send,
                    "500" if fault == "error_event" else fault,
                    over.retry_after,
                    self.settings.retry_after,
                )
                return
            body = json.dumps(embeddings.whole(call)).encode()
            pacing = self._pacing(over, fault)
            await self._send_whole(receive, send, body, 0.0, pacing, over.tag, None)
        finally:
            self.stats.finish()

    async def _generate(self, path: str, receive: Receive, send: Send, data: Any) -> None:
        kind, parse, prefix = _GENERATING[path]
        try:
            call = parse(data, self.settings.openai_models)
        except OpenAIError as exc:
            await self._refuse(send, exc)
            return
        over = call.overrides
        try:
            fault = await self._begin(over, call.fingerprint)
            if fault in WHOLE_FAULTS or (fault == "error_event" and not call.stream):
                await send_fault(
                    send,
                    "500" if fault == "error_event" else fault,
                    over.retry_after,
                    self.settings.retry_after,
                )
                return
            chunks = over.chunks or self.settings.chunks
            size = over.chunk_size or self.settings.chunk_size
            ident, created = prefix + os.urandom(12).hex(), int(time.time())
            framer = _FRAMERS[kind]
            pacing = self._pacing(over, fault)
            if not call.stream:
                body = json.dumps(
                    framer.whole(call, ident, created, chunks, size), ensure_ascii=False
                ).encode()
                pieces = max(len(answer(s, call.shape, chunks, size).pieces) for s in call.seeds)
                wait = pacing.delay * max(pieces - 1, 0)
                await self._send_whole(receive, send, body, wait, pacing, over.tag, ident)
                return
            events = framer.stream_events(call, ident, created, chunks, size)
            writes = frame(events, over.sse)
            tail: tuple[Write, ...] = ()
            if fault == "error_event":
                cut = _cut_index(pacing, len(writes))
                tail = frame([_error_events(call, ident, created, events, cut)], over.sse)
            start = {
                "type": "http.response.start",
                "status": 200,
                "headers": _headers(CONTENT_TYPE, ident),
            }
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
            outcome = (
                LEFT
                if await left_within(watcher, wait)
                else await play(send, watcher, start, writes, pacing, tail)
            )
        finally:
            watcher.cancel()
        if outcome == COMPLETE:
            self.stats.complete(tag, "openai")
        elif outcome == LEFT:
            self.stats.disconnected += 1


def _error_events(
    call: Call, ident: str, created: int, events: list[list[Event]], cut: int
) -> list[Event]:
    if call.kind == "response":
        sent = sum(len(group) for group in events[:cut])
        return responses_api.error_events(call, ident, created, sent, ERROR_EVENT_MESSAGE)
    body = error_body(ERROR_EVENT_MESSAGE, "server_error")
    return [(None, json.dumps(body).encode()), DONE]


def _body_problem(problem: Exception) -> OpenAIError:
    if isinstance(problem, BodyTooLarge):
        return OpenAIError(
            f"The request body is too large: {problem}.", None, "body_too_large", 413
        )
    return OpenAIError(
        "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
        f"using your HTTP library correctly.) {problem}",
    )
