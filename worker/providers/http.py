"""Long-lived httpx clients with limits that hold up under hundreds of concurrent streams.

Building a client costs ~31 ms, so clients are built once and shared: one synchronous
client per process, one async client per event loop (an AsyncClient's connections belong
to the loop that opened them). The keep-alive pool stays small (about 20): httpx's pool
bookkeeping collapses when ``max_keepalive_connections`` nears the number of concurrent
streams (measured: 34 streams/s), while total connections are unbounded so hundreds of
streams run at once. The read timeout applies to every socket read, so it is the longest
silence allowed between two chunks: the stall timeout. Async clients run over the
transport ``AIVBATCH_HTTP_TRANSPORT`` names (worker/providers/transport.py: aiohttp by
default, httpcore on demand); the pool figures above are httpcore's.

Every builder takes its settings as arguments: workers build their clients from the
settings their runtime holds (``ClientShards.for_settings``) at process start and close them
at shutdown; ``shared_client()`` / ``shared_async_client()`` serve the seed's callers, which
pass none, and read the process's settings there, at that edge.
"""

from __future__ import annotations

import asyncio
import functools
import os
import threading
import weakref
from typing import Any

import httpx

from models.settings import Settings, get_settings
from worker.providers.transport import async_transport

_lock = threading.Lock()
_sync_client: httpx.Client | None = None
_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
    weakref.WeakKeyDictionary()
)
# Clients inherited across fork: their sockets belong to the parent, so the child must
# neither use nor close them; kept referenced so the GC never closes them either.
_inherited: list[object] = []


def limits(keepalive: int) -> httpx.Limits:
    """Unbounded connections and a small keep-alive pool (``AIVBATCH_HTTP_KEEPALIVE``)."""
    return httpx.Limits(max_connections=None, max_keepalive_connections=keepalive)


def timeout(*, connect: float, stall: float) -> httpx.Timeout:
    """Connect timeout, and read/write timeouts equal to the stall timeout; no pool wait."""
    return httpx.Timeout(connect=connect, read=stall, write=stall, pool=None)


def with_overrides(
    client: httpx.Client | httpx.AsyncClient, *, connect: float | None, stall: float | None
) -> httpx.Timeout:
    """The client's own timeouts with a per-request connect and/or stall override."""
    own = client.timeout
    return httpx.Timeout(
        connect=own.connect if connect is None else connect,
        read=own.read if stall is None else stall,
        write=own.write if stall is None else stall,
        pool=own.pool,
    )


@functools.lru_cache(maxsize=256)
def parsed_url(url: str) -> httpx.URL:
    """``url`` parsed once: httpx parses a string URL on every request (a regex per part,
    a few per cent of a worker's CPU); an ``httpx.URL`` is immutable, so one is shared."""
    return httpx.URL(url)


def make_client(settings: Settings, **client_kwargs: Any) -> httpx.Client:
    """A new synchronous client with the upstream limits and timeouts (build once, close)."""
    return httpx.Client(
        limits=limits(settings.http_keepalive),
        timeout=timeout(connect=settings.connect_timeout, stall=settings.stall_timeout),
        **client_kwargs,
    )


def make_async_client(settings: Settings, **client_kwargs: Any) -> httpx.AsyncClient:
    """A new AsyncClient for one worker process (build once at start, ``aclose`` at shutdown),
    over the transport ``settings.http_transport`` names unless ``transport=`` is given."""
    client_kwargs.setdefault("transport", async_transport(settings.http_transport))
    return httpx.AsyncClient(
        limits=limits(settings.http_keepalive),
        timeout=timeout(connect=settings.connect_timeout, stall=settings.stall_timeout),
        **client_kwargs,
    )


class ClientShards:
    """Several AsyncClients sharing one process's streams, a job always on the same one.

    httpx's pool walks all of its connections for every request it places, so one client
    holding 500 streams spends its time in that bookkeeping; clients of ~64 streams each
    do not (bench/pipeline.py measures it).
    """

    def __init__(self, clients: list[httpx.AsyncClient]) -> None:
        self.clients = clients

    @classmethod
    def for_settings(cls, settings: Settings, **client_kwargs: Any) -> ClientShards:
        """Enough clients for ``worker_streams`` at ``streams_per_client`` each (at least one)."""
        count = max(1, -(-settings.worker_streams // settings.streams_per_client))
        return cls([make_async_client(settings, **client_kwargs) for _ in range(count)])

    def pick(self, key: int) -> httpx.AsyncClient:
        """The client for ``key`` (a job id)."""
        return self.clients[key % len(self.clients)]

    async def aclose(self) -> None:
        """Close every client."""
        for client in self.clients:
            await client.aclose()


def shared_client() -> httpx.Client:
    """The process's synchronous client, built on first use."""
    global _sync_client
    with _lock:
        if _sync_client is None or _sync_client.is_closed:
            _sync_client = make_client(get_settings())
        return _sync_client


def shared_async_client() -> httpx.AsyncClient:
    """The running event loop's AsyncClient, built on first use in that loop."""
    loop = asyncio.get_running_loop()
    with _lock:
        client = _async_clients.get(loop)
        if client is None or client.is_closed:
            client = _async_clients[loop] = make_async_client(get_settings())
        return client


async def aclose_shared_clients() -> None:
    """Close the running loop's shared AsyncClient and the synchronous one."""
    with _lock:
        client = _async_clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()
    close_shared_clients()


def close_shared_clients() -> None:
    """Close the synchronous client, and every shared AsyncClient whose loop is not running.

    A client whose loop is running in this thread is left for ``aclose_shared_clients``
    (closing it needs that loop); one whose loop is closed has nothing left to close with.
    """
    global _sync_client
    with _lock:
        sync_client, _sync_client = _sync_client, None
        async_clients = list(_async_clients.items())
    if sync_client is not None:
        sync_client.close()
    for loop, client in async_clients:
        if loop.is_closed():
            _forget(loop)
        elif not loop.is_running():
            loop.run_until_complete(client.aclose())
            _forget(loop)
        elif not _runs_here(loop):
            asyncio.run_coroutine_threadsafe(client.aclose(), loop).result(timeout=10)
            _forget(loop)


def _runs_here(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _forget(loop: asyncio.AbstractEventLoop) -> None:
    with _lock:
        _async_clients.pop(loop, None)


def _after_fork_in_child() -> None:
    global _lock, _sync_client
    # The parent may have held the lock while forking; a fresh one cannot be stuck.
    _lock = threading.Lock()
    if _sync_client is not None:
        _inherited.append(_sync_client)
    _inherited.extend(_async_clients.values())
    _sync_client = None
    _async_clients.clear()


os.register_at_fork(after_in_child=_after_fork_in_child)
