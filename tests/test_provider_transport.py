"""The aiohttp transport under the workers' httpx clients: its errors are httpx's, named as
httpcore names them, and an idle connection is not kept for as long as servers keep theirs."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import httpx
import pytest

from tests.support.emulator import EmulatorServer
from worker.providers.transport import async_transport, mapped

BODY = {
    "model": {"id": "gpt-3.5-turbo", "name": "GPT-3.5"},
    "key": "",
    "prompt": "",
    "temperature": 0.7,
    "messages": [{"role": "user", "content": "Hello"}],
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    log: Path = tmp_path_factory.mktemp("emulator") / "emulator.log"
    with EmulatorServer({"ttfb_ms": 0, "delay_ms": 5, "chunks": 3}, log=log) as running:
        yield running


def _connector_error() -> aiohttp.ClientConnectorError:
    key = aiohttp.client_reqrep.ConnectionKey("h", 1, False, True, None, None, None)
    return aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "refused"))


@pytest.mark.parametrize(
    ("raised", "kind"),
    [
        (aiohttp.ConnectionTimeoutError("connect"), httpx.ConnectTimeout),
        (aiohttp.SocketTimeoutError("read"), httpx.ReadTimeout),
        (_connector_error(), httpx.ConnectError),
        (aiohttp.ServerDisconnectedError(), httpx.RemoteProtocolError),
        (aiohttp.ClientPayloadError("cut"), httpx.RemoteProtocolError),
        (ConnectionResetError(104, "reset"), httpx.ReadError),
        (aiohttp.ClientOSError(104, "reset"), httpx.ReadError),
    ],
)
def test_aiohttp_errors_become_the_httpx_ones_httpcore_raises(
    raised: Exception, kind: type[Exception]
) -> None:
    error = mapped(raised)
    assert type(error) is kind and str(error)
    # The library's own mapping of it (ServerDisconnected → ConnectTimeout) is remapped.
    wrapped = httpx.ConnectTimeout("as the library maps it")
    wrapped.__cause__ = raised
    assert type(mapped(wrapped)) is kind
    # Anything else is left as it is.
    other = ValueError("ours")
    assert mapped(other) is other


def test_an_idle_connection_is_reused_only_well_within_the_servers_keepalive(
    server: EmulatorServer,
) -> None:
    """aiohttp reuses an idle connection without checking that it is still open (httpcore
    checks): one the server closes as the request goes out fails it. So none idle for 3 s
    is reused, well under common servers' keep-alive (uvicorn's 5 s)."""

    async def main() -> None:
        async with httpx.AsyncClient(transport=async_transport("aiohttp")) as client:
            for pause in (0.0, 0.0, 3.0):
                await asyncio.sleep(pause)  # the idle time under test, not a wait
                response = await client.post(server.url + "/api/chat", json=BODY)
                assert response.status_code == 200

    asyncio.run(main())
    ports = [call["client"][1] for call in server.requests(3)]
    assert ports[0] == ports[1] != ports[2], ports


def test_a_refused_connection_is_a_connect_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]

    async def main() -> BaseException:
        async with httpx.AsyncClient(transport=async_transport("aiohttp")) as client:
            try:
                await client.post(f"http://127.0.0.1:{port}/api/chat", json=BODY)
            except httpx.HTTPError as exc:
                return exc
        raise AssertionError("no error")

    assert type(asyncio.run(main())) is httpx.ConnectError
