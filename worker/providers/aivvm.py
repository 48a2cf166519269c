"""The Aivvm provider: a drop-in for gpt4free's ``Aivvm``, with shared clients, incremental
decoding, connect and stall timeouts, and typed errors.

    provider = Aivvm()
    for chunk in provider.create_completion(model="gpt-3.5-turbo", messages=messages, stream=True):
        print(chunk)

The endpoint is ``base_url=`` when given, else ``AIVBATCH_AIVVM_URL``, else ``Aivvm.url``.
Options (keyword arguments): ``key``, ``system_message``, ``temperature``, ``base_url``,
``client`` (an ``httpx.Client`` / ``httpx.AsyncClient`` to use instead of the shared one),
``connect_timeout`` and ``stall_timeout`` (seconds, overriding the client's).
Failures raise the ``worker.providers.errors`` tree, never a bare httpx exception.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar

import httpx
from pydantic import SecretStr

from models.settings import get_settings
from worker.providers import wire
from worker.providers.base import AbstractProvider, AsyncResult, CreateResult, Messages
from worker.providers.decoding import TextStream
from worker.providers.errors import UnsupportedModel
from worker.providers.http import (
    parsed_url,
    shared_async_client,
    shared_client,
    with_overrides,
)

MODEL_TABLE: dict[str, dict[str, str]] = {
    "gpt-3.5-turbo": {"id": "gpt-3.5-turbo", "name": "GPT-3.5"},
    "gpt-3.5-turbo-0613": {"id": "gpt-3.5-turbo-0613", "name": "GPT-3.5-0613"},
    "gpt-3.5-turbo-16k": {"id": "gpt-3.5-turbo-16k", "name": "GPT-3.5-16K"},
    "gpt-3.5-turbo-16k-0613": {"id": "gpt-3.5-turbo-16k-0613", "name": "GPT-3.5-16K-0613"},
    "gpt-4": {"id": "gpt-4", "name": "GPT-4"},
    "gpt-4-0613": {"id": "gpt-4-0613", "name": "GPT-4-0613"},
    "gpt-4-32k": {"id": "gpt-4-32k", "name": "GPT-4-32K"},
    "gpt-4-32k-0613": {"id": "gpt-4-32k-0613", "name": "GPT-4-32K-0613"},
}

DEFAULT_SYSTEM_PROMPT = (
    "You are ChatGPT, a large language model trained by OpenAI. Follow the user's "
    "instructions carefully. Respond using markdown."
)

# The browser the original presented itself as; origin and referer follow the base URL.
BROWSER_HEADERS = {
    "accept-language": "en-US,en;q=0.9",
    "sec-ch-ua": '"Chromium";v="117", "Not;A=Brand";v="8", "Google Chrome";v="117"',
    "sec-ch-ua-mobile": "?0",
    "sec-ch-ua-platform": '"Windows"',
    "sec-fetch-dest": "empty",
    "sec-fetch-mode": "cors",
    "sec-fetch-site": "same-origin",
    "user-agent": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/117.0.0.0 Safari/537.36"
    ),
}
CHAT_HEADERS = {"accept": "text/event-stream", "content-type": "application/json"}
# Enough of an error body for its message; a huge or endless one is not read to the end.
ERROR_BODY_LIMIT = 64 * 1024


@dataclass(frozen=True, slots=True)
class _Call:
    """One prepared request; ``secret`` is kept only to mask it in error messages."""

    url: httpx.URL
    headers: dict[str, str]
    body: dict[str, Any]
    connect: float | None
    stall: float | None
    secret: str

    def __repr__(self) -> str:
        return f"_Call({str(self.url)!r})"

    def timeout(self, client: httpx.Client | httpx.AsyncClient) -> Any:
        """Per-request timeouts when overridden, else the client's own."""
        if self.connect is None and self.stall is None:
            return httpx.USE_CLIENT_DEFAULT
        return with_overrides(client, connect=self.connect, stall=self.stall)

    def fail(self, exc: httpx.RequestError, text: TextStream | None, stall: float | None) -> Any:
        """The provider error for a transport failure of this call."""
        origin = wire.origin_of(self.url)
        return wire.transport_error(exc, text, stall=stall, origin=origin)


class Aivvm(AbstractProvider):
    """The Aivvm chat service (gone; reach any server speaking its protocol by base URL)."""

    url: ClassVar[str] = "https://chat.aivvm.com"
    supports_stream: ClassVar[bool] = True
    working: ClassVar[bool] = False
    supports_gpt_35_turbo: ClassVar[bool] = True
    supports_gpt_4: ClassVar[bool] = True
    default_model: ClassVar[str] = "gpt-3.5-turbo"
    models: ClassVar[tuple[str, ...]] = tuple(MODEL_TABLE)

    @classmethod
    def base_url(cls, base_url: str | None = None) -> str:
        """Where requests go: the argument, else AIVBATCH_AIVVM_URL, else the class url."""
        return (base_url or get_settings().aivvm_url or cls.url).rstrip("/")

    @classmethod
    def request_body(cls, model: str, messages: Messages, **kwargs: Any) -> dict[str, Any]:
        """The JSON body of a chat request, as the original sent it."""
        model = model or cls.default_model
        if model not in MODEL_TABLE:
            raise UnsupportedModel(model)
        return {
            "model": dict(MODEL_TABLE[model]),
            "messages": messages,
            "key": _key(kwargs.get("key")),
            "prompt": kwargs.get("system_message", DEFAULT_SYSTEM_PROMPT),
            "temperature": kwargs.get("temperature", 0.7),
        }

    @classmethod
    def request_headers(cls, base_url: str | None = None) -> dict[str, str]:
        """The headers of a chat request: JSON in, a text stream out, and a browser's."""
        base = cls.base_url(base_url)
        return {**CHAT_HEADERS, **BROWSER_HEADERS, "origin": base, "referer": base + "/"}

    @classmethod
    def create_completion(
        cls, model: str, messages: Messages, stream: bool, **kwargs: Any
    ) -> CreateResult:
        """Yield the answer as it arrives (``stream``), or whole as one chunk."""
        call = cls._prepare(model, messages, kwargs)
        client: httpx.Client = kwargs.get("client") or shared_client()
        chunks = _stream_sync(client, call)
        return chunks if stream else _whole(chunks)

    @classmethod
    async def create_async_generator(
        cls, model: str, messages: Messages, **kwargs: Any
    ) -> AsyncResult:
        """Yield the answer's text as it arrives, without blocking the event loop."""
        call = cls._prepare(model, messages, kwargs)
        client: httpx.AsyncClient = kwargs.get("client") or shared_async_client()
        async for text in _stream_async(client, call):
            yield text

    @classmethod
    def list_models(cls, base_url: str | None = None, **kwargs: Any) -> list[dict[str, str]]:
        """The ``{id, name}`` models the service lists at ``/api/models``."""
        call = cls._prepare_list(base_url, kwargs)
        client: httpx.Client = kwargs.get("client") or shared_client()
        try:
            r = client.get(call.url, headers=call.headers, timeout=call.timeout(client))
        except httpx.RequestError as exc:
            raise call.fail(exc, None, call.stall or client.timeout.read) from exc
        return wire.model_list(r.status_code, r.headers, r.content)

    @classmethod
    async def alist_models(cls, base_url: str | None = None, **kwargs: Any) -> list[dict[str, str]]:
        """``list_models`` for the event loop."""
        call = cls._prepare_list(base_url, kwargs)
        client: httpx.AsyncClient = kwargs.get("client") or shared_async_client()
        try:
            r = await client.get(call.url, headers=call.headers, timeout=call.timeout(client))
        except httpx.RequestError as exc:
            raise call.fail(exc, None, call.stall or client.timeout.read) from exc
        return wire.model_list(r.status_code, r.headers, r.content)

    @classmethod
    def _prepare(cls, model: str, messages: Messages, kwargs: dict[str, Any]) -> _Call:
        body = cls.request_body(model, messages, **kwargs)
        base_url = kwargs.get("base_url")
        return _Call(
            url=parsed_url(cls.base_url(base_url) + "/api/chat"),
            headers=cls.request_headers(base_url),
            body=body,
            connect=kwargs.get("connect_timeout"),
            stall=kwargs.get("stall_timeout"),
            secret=body["key"],
        )

    @classmethod
    def _prepare_list(cls, base_url: str | None, kwargs: dict[str, Any]) -> _Call:
        headers = {**cls.request_headers(base_url), "accept": "application/json"}
        return _Call(
            url=parsed_url(cls.base_url(base_url) + "/api/models"),
            headers=headers,
            body={},
            connect=kwargs.get("connect_timeout"),
            stall=kwargs.get("stall_timeout"),
            secret="",
        )


def _key(given: str | SecretStr | None) -> str:
    if given is None:
        return get_settings().aivvm_key.get_secret_value()
    return given.get_secret_value() if isinstance(given, SecretStr) else given


def _whole(chunks: Iterator[str]) -> Iterator[str]:
    yield "".join(chunks)


class _Answer:
    """One response's bytes in, the answer's text out, or the error it stands for.

    The sync and async paths differ only in how they read bytes; everything they decide
    is decided here, once.
    """

    __slots__ = ("call", "headers", "rejected", "size", "status", "text")

    def __init__(self, call: _Call, status: int, headers: httpx.Headers) -> None:
        self.call = call
        self.status = status
        self.headers = headers
        self.size = 0
        # The body of an error or of an HTML page, kept (up to a limit) for its message.
        self.rejected: list[bytes] | None = None
        self.text: TextStream | None = None
        if status >= 300 or wire.is_html(headers.get("content-type", ""), b""):
            self.rejected = []
        else:
            self.text = TextStream()

    @property
    def enough(self) -> bool:
        """Whether enough of a rejected body is read to say what went wrong."""
        return self.rejected is not None and self.size >= ERROR_BODY_LIMIT

    def feed(self, raw: bytes) -> str:
        """The answer's text that ``raw`` completes ('' while rejecting or mid-character)."""
        if self.text is None:
            assert self.rejected is not None
            self.rejected.append(raw)
            self.size += len(raw)
            return ""
        piece = self.text.feed(raw)
        if self.text.html is not None:
            # A 2xx whose body turns out to be an HTML page (an anti-bot wall).
            self.rejected, self.size = [self.text.html], len(self.text.html)
            self.text = None
        return piece

    def finish(self) -> str:
        """The answer's last characters; raises the error a rejected body stands for."""
        if self.text is not None:
            return self.text.finish()
        body, secret = b"".join(self.rejected or ()), self.call.secret
        if self.status >= 300:
            raise wire.error_for_status(self.status, self.headers, body, secret=secret)
        raise wire.not_an_answer(self.status, self.headers, body, secret=secret)


def _stream_sync(client: httpx.Client, call: _Call) -> Iterator[str]:
    answer: _Answer | None = None
    try:
        with client.stream(
            "POST", call.url, json=call.body, headers=call.headers, timeout=call.timeout(client)
        ) as r:
            answer = _Answer(call, r.status_code, r.headers)
            for raw in r.iter_bytes():
                if piece := answer.feed(raw):
                    yield piece
                if answer.enough:
                    break
            if piece := answer.finish():
                yield piece
    except httpx.RequestError as exc:
        text = answer.text if answer else None
        raise call.fail(exc, text, call.stall or client.timeout.read) from exc


async def _stream_async(client: httpx.AsyncClient, call: _Call) -> AsyncIterator[str]:
    answer: _Answer | None = None
    try:
        async with client.stream(
            "POST", call.url, json=call.body, headers=call.headers, timeout=call.timeout(client)
        ) as r:
            answer = _Answer(call, r.status_code, r.headers)
            async for raw in r.aiter_bytes():
                if piece := answer.feed(raw):
                    yield piece
                if answer.enough:
                    break
            if piece := answer.finish():
                yield piece
    except httpx.RequestError as exc:
        text = answer.text if answer else None
        raise call.fail(exc, text, call.stall or client.timeout.read) from exc
