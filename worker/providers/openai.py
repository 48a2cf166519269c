"""The OpenAI-compatible provider: vLLM, Ollama, llama.cpp's server, LM Studio, TGI, LiteLLM,
OpenRouter, OpenAI itself, or anything else that speaks OpenAI's streaming API.

``POST {base_url}/chat/completions`` (or ``/completions``, ``/responses``) with
``stream: true``; chat and text completions also ask for ``stream_options.include_usage`` so
the last event carries the token counts. Server-sent events are parsed by ``httpx-sse`` and
assembled by worker/providers/assembly.py. ``/embeddings`` is not streamed: its JSON answer
is the final record. Every body field of the request passes through as the caller gave it,
but ``stream`` and ``stream_options``, which are ours.

Status codes: 400, 401, 403, 404, 413, 422 (any other 4xx too) are refusals; 408, 409, 429
(with ``retry-after-ms`` or ``Retry-After``), 5xx, cut and stalled streams can succeed later.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import httpx
from httpx_sse import EventSource, SSEError

from models.endpoints import CHAT, COMPLETIONS, EMBEDDINGS, ENDPOINTS, RESPONSES, upstream_path
from worker.providers import wire
from worker.providers.assembly import (
    ChatAssembler,
    CompletionAssembler,
    stream_error,
    usage_tokens,
)
from worker.providers.errors import NotAnAnswer, StreamInterrupted, UpstreamError
from worker.providers.http import parsed_url
from worker.providers.interface import Final, Item, Provider, Request, TextDelta
from worker.providers.masking import DeltaMasker, mask_error
from worker.providers.responses_assembly import ResponsesAssembler

# Enough of an error body for its message; a huge or endless one is not read to the end.
ERROR_BODY_LIMIT = 64 * 1024
# A whole (non-streamed) JSON answer may be large (embeddings of many inputs), not endless.
WHOLE_BODY_LIMIT = 64 * 1024 * 1024
# Fields of a request body that this service sets itself.
OURS = ("stream", "stream_options")

Assembler = ChatAssembler | CompletionAssembler | ResponsesAssembler


class OpenAIProvider(Provider):
    """One OpenAI-compatible upstream."""

    kind: ClassVar[str] = "openai"
    endpoints: ClassVar[tuple[str, ...]] = ENDPOINTS

    def __init__(
        self,
        name: str,
        *,
        base_url: str,
        api_key: str = "",
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(name)
        self.base_url = base_url.rstrip("/")
        self._secret = api_key
        self.headers = {"accept": "text/event-stream", **(headers or {})}
        if api_key:
            self.headers["authorization"] = f"Bearer {api_key}"
        self.origin = wire.origin_of(httpx.URL(self.base_url))

    def __repr__(self) -> str:
        return f"OpenAIProvider({self.name!r}, {self.origin})"

    def body(self, request: Request) -> dict[str, Any]:
        """The JSON body sent for ``request``."""
        body = {k: v for k, v in request.params.items() if k not in OURS}
        body["model"] = request.model
        if request.endpoint == CHAT:
            messages = list(request.messages)
            if request.system_message is not None:
                messages.insert(0, {"role": "system", "content": request.system_message})
            body["messages"] = messages
        if request.temperature is not None:
            body["temperature"] = request.temperature
        if request.endpoint != EMBEDDINGS:
            body["stream"] = True
        if request.endpoint in (CHAT, COMPLETIONS):
            body["stream_options"] = {"include_usage": True}
        return body

    async def stream(self, request: Request, client: httpx.AsyncClient) -> AsyncIterator[Item]:
        """Yield the answer's deltas (the key masked), then its ``Final``."""
        masker = DeltaMasker(self._secret)
        assembler = _assembler(request.endpoint)
        url = parsed_url(self.base_url + upstream_path(request.endpoint))
        started = False
        try:
            async with client.stream(
                "POST", url, json=self.body(request), headers=self.headers
            ) as response:
                await self._check(response)
                started = True
                async for item in self._items(response, request.endpoint, assembler):
                    if (masked := masker.mask(item)) is not None:
                        if isinstance(masked, Final):
                            for held in masker.flush():
                                yield held
                        yield masked
        except httpx.RequestError as exc:
            partial = assembler.partial_text() if started and assembler else None
            stall = client.timeout.read
            error = wire.transport_failure(exc, partial, stall=stall, origin=self.origin)
            raise mask_error(error, self._secret) from exc
        except UpstreamError as exc:
            # The upstream's own words (an error event, say) may hold the key it was sent.
            raise mask_error(exc, self._secret) from None

    async def _check(self, response: httpx.Response) -> None:
        """Raise the error a response stands for before its body is read as an answer."""
        content_type = response.headers.get("content-type", "")
        if response.status_code >= 300:
            body = await _read_some(response, ERROR_BODY_LIMIT)
            raise wire.error_for_status(
                response.status_code, response.headers, body, secret=self._secret
            )
        if wire.is_html(content_type, b""):
            body = await _read_some(response, ERROR_BODY_LIMIT)
            raise wire.not_an_answer(
                response.status_code, response.headers, body, secret=self._secret
            )

    async def _items(
        self, response: httpx.Response, endpoint: str, assembler: Assembler | None
    ) -> AsyncIterator[Item]:
        content_type = response.headers.get("content-type", "").lower()
        if assembler is not None and "text/event-stream" in content_type:
            async for item in _events(response, assembler):
                yield item
            return
        # A whole JSON answer: embeddings, or a server that does not stream.
        body = await _read_some(response, WHOLE_BODY_LIMIT)
        data = _json(body)
        if not isinstance(data, dict):
            text = wire.upstream_message(body, content_type, self._secret)
            raise NotAnAnswer(
                f"the upstream answered {response.status_code} with neither events nor a JSON"
                f" object: {text}",
                status_code=response.status_code,
            )
        if "error" in data and data["error"]:
            raise stream_error(data, "")
        for item in _whole(endpoint, data):
            yield item


def _assembler(endpoint: str) -> Assembler | None:
    if endpoint == CHAT:
        return ChatAssembler()
    if endpoint == COMPLETIONS:
        return CompletionAssembler()
    if endpoint == RESPONSES:
        return ResponsesAssembler()
    return None


async def _events(response: httpx.Response, assembler: Assembler) -> AsyncIterator[Item]:
    done = False
    try:
        async for event in EventSource(response).aiter_sse():
            if event.data == "[DONE]":
                done = True
                break
            if not event.data:
                continue
            data = _json(event.data.encode())
            if not isinstance(data, dict):
                raise NotAnAnswer(
                    f"the upstream sent an event that is not a JSON object: {event.data[:200]}",
                    status_code=200,
                )
            if "error" in data and data["error"] and "type" not in data:
                raise stream_error(data, assembler.partial_text())
            data.setdefault("type", event.event) if isinstance(
                assembler, ResponsesAssembler
            ) else None
            for item in assembler.feed(data):
                yield item
    except SSEError as exc:
        raise NotAnAnswer(f"the upstream's events are malformed: {exc}", status_code=200) from exc
    if not done and not isinstance(assembler, ResponsesAssembler) and not _ended(assembler):
        raise StreamInterrupted(
            "the stream ended before [DONE]", partial_text=assembler.partial_text()
        )
    yield assembler.final()


def _ended(assembler: ChatAssembler) -> bool:
    """Whether every choice has its finish reason (a stream may end without [DONE])."""
    return bool(assembler.choices) and all(c.finish_reason for c in assembler.choices.values())


def _whole(endpoint: str, data: dict[str, Any]) -> list[Item]:
    """The deltas and final record of a non-streamed answer."""
    items: list[Item] = []
    if endpoint in (CHAT, COMPLETIONS):
        for choice in data.get("choices") or ():
            if not isinstance(choice, dict):
                continue
            message = choice.get("message")
            text = message.get("content") if isinstance(message, dict) else choice.get("text")
            if isinstance(text, str) and text:
                items.append(TextDelta(text, choice.get("index") or 0))
    choices = data.get("choices") or [{}]
    first = choices[0] if isinstance(choices[0], dict) else {}
    message = first.get("message")
    if not isinstance(message, dict):
        message = {}
    items.append(
        Final(
            body=data,
            finish_reason=first.get("finish_reason") or "stop",
            usage=usage_tokens(data.get("usage")),
            tool_calls=list(message.get("tool_calls") or []),
            response_id=data.get("id"),
            model=data.get("model"),
        )
    )
    return items


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return None


async def _read_some(response: httpx.Response, limit: int) -> bytes:
    parts: list[bytes] = []
    size = 0
    async for raw in response.aiter_bytes():
        parts.append(raw)
        size += len(raw)
        if size >= limit:
            break
    return b"".join(parts)
