"""The async clients' transport: aiohttp's HTTP/1.1 under httpx's API, or httpx's own.

httpx over httpcore spends most of a worker's CPU in its own bookkeeping: reading 500
streams at once costs ~1.75 ms of CPU per stream, against ~0.65 ms through the
``httpx-aiohttp`` transport (bench/reference.py measures both). The providers keep
speaking httpx (requests, responses, timeouts, exceptions); only the sockets change.

aiohttp raises its own exceptions, and the library's mapping of them is loose (a server
that disconnects becomes a ``ConnectTimeout``; a reset socket or a malformed answer goes
through unmapped). Every aiohttp or socket error is mapped here, once, to the httpx
exception httpcore raises for the same event, so worker/providers/wire.py names it the
same way whichever transport ran.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Literal, NoReturn

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport

Transport = Literal["aiohttp", "httpcore"]
# How long an idle connection is kept for reuse. Well under the keep-alive timeouts of
# servers (uvicorn's, so vLLM's, is 5 s): aiohttp does not check that an idle connection is
# still open before it reuses it (httpcore does), so one the server closes as the request
# goes out fails it ("Server disconnected"). At httpx's 5 s, 57 of 350 requests made after
# pauses of about 5 s failed so against the emulator; at 2 s, none.
KEEPALIVE_SECONDS = 2.0
TRANSPORTS: tuple[Transport, ...] = ("aiohttp", "httpcore")

# Most specific first: the first class the error is an instance of decides.
_MAPPING: tuple[tuple[type[BaseException], type[httpx.TransportError]], ...] = (
    (aiohttp.ConnectionTimeoutError, httpx.ConnectTimeout),
    (aiohttp.ServerTimeoutError, httpx.ReadTimeout),
    (aiohttp.ClientConnectorError, httpx.ConnectError),
    # The peer closed the connection before the whole message: httpcore's RemoteProtocolError.
    (aiohttp.ServerDisconnectedError, httpx.RemoteProtocolError),
    (aiohttp.ClientPayloadError, httpx.RemoteProtocolError),
    (aiohttp.ClientResponseError, httpx.RemoteProtocolError),
    (aiohttp.InvalidURL, httpx.UnsupportedProtocol),
    (ConnectionRefusedError, httpx.ConnectError),
    (OSError, httpx.ReadError),
    (aiohttp.ClientError, httpx.ReadError),
)


def mapped(exc: BaseException) -> BaseException:
    """The httpx exception standing for ``exc`` (raised by aiohttp or by the library's own
    mapping, whose cause is aiohttp's); anything else is returned as it is."""
    cause = exc
    if isinstance(exc, httpx.TransportError) and exc.__cause__ is not None:
        cause = exc.__cause__
    for aiohttp_kind, httpx_kind in _MAPPING:
        if isinstance(cause, aiohttp_kind):
            return httpx_kind(str(cause) or type(cause).__name__)
    return exc


def _reraise(exc: Exception) -> NoReturn:
    error = mapped(exc)
    if error is exc:
        raise exc
    raise error from exc


class _MappedStream(httpx.AsyncByteStream):
    """A response body whose read errors are mapped like the request's."""

    def __init__(self, inner: httpx.AsyncByteStream) -> None:
        self._inner = inner

    async def __aiter__(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._inner:
                yield chunk
        except Exception as exc:
            _reraise(exc)

    async def aclose(self) -> None:
        try:
            await self._inner.aclose()
        except Exception as exc:
            _reraise(exc)


class AiohttpTransportMapped(AiohttpTransport):
    """``httpx_aiohttp.AiohttpTransport`` with unbounded connections and mapped errors.

    Its default session caps connections at aiohttp's 100 when httpx's limit is None
    (ours: a client holds as many streams as it is given), so the session is built here.
    """

    def __init__(self, *, keepalive_expiry: float | None) -> None:
        super().__init__(
            limits=httpx.Limits(max_connections=None, keepalive_expiry=keepalive_expiry),
            client=self._session,
        )

    def _session(self) -> aiohttp.ClientSession:
        # Called on the first request, inside the event loop the session belongs to.
        connector = aiohttp.TCPConnector(
            limit=0, keepalive_timeout=self.limits.keepalive_expiry, ssl=self.ssl_context
        )
        return aiohttp.ClientSession(connector=connector)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            response = await super().handle_async_request(request)
        except Exception as exc:
            _reraise(exc)
        assert isinstance(response.stream, httpx.AsyncByteStream)
        response.stream = _MappedStream(response.stream)
        return response


def async_transport(kind: Transport) -> httpx.AsyncBaseTransport | None:
    """The transport of a new AsyncClient; None lets httpx build its own (httpcore)."""
    if kind == "httpcore":
        return None
    return AiohttpTransportMapped(keepalive_expiry=KEEPALIVE_SECONDS)
