"""Event streams held to their tenant's limits while they stay open.

A tenant may hold ``AIVBATCH_TENANT_MAX_STREAMS`` streams at once, across API processes:
each open stream leases a member of a Redis sorted set (score: when the lease ends), renewed
while it streams, so a killed API process's streams free themselves. And a stream lives
only as long as its key: it is checked every ``CHECK_EVERY`` seconds, whatever the stream
is doing, and a revoked key ends it with a ``closed`` event.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import anyio
from fastapi.concurrency import run_in_threadpool

from api.auth import key_is_live
from api.errors import TooManyRequests
from api.live import sse
from api.services import Services

CHECK_EVERY = 2.0
LEASE_SECONDS = 30
# Take a slot if fewer than ARGV[3] live leases remain after dropping the expired ones.
_ACQUIRE = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return 0 end
redis.call('ZADD', KEYS[1], ARGV[2], ARGV[4])
redis.call('EXPIRE', KEYS[1], ARGV[5])
return 1
"""


@dataclass
class StreamSlot:
    """One open stream's lease."""

    services: Services
    key: str
    member: str

    @classmethod
    async def take(cls, services: Services, tenant: str) -> StreamSlot:
        """Lease a slot, or raise TooManyRequests when the tenant holds all it may."""
        key = services.keys.tenant_streams(tenant)
        member = uuid.uuid4().hex
        now = time.time()
        limit = services.settings.tenant_max_streams
        taken: Any = await services.redis.eval(
            _ACQUIRE, 1, key, now, now + LEASE_SECONDS, limit, member, LEASE_SECONDS * 2
        )
        if not int(taken):
            raise TooManyRequests(
                f"this tenant holds {limit} open event streams, the most it may"
                " (AIVBATCH_TENANT_MAX_STREAMS)",
                retry_after=5,
                code="too_many_streams",
            )
        return cls(services, key, member)

    async def renew(self) -> None:
        """Extend the lease (a Redis failure is let pass: the lease has time to spare)."""
        try:
            await self.services.redis.zadd(self.key, {self.member: time.time() + LEASE_SECONDS})
        except Exception:  # any failure here only shortens the lease
            return

    async def release(self) -> None:
        """Give the slot back."""
        try:
            await self.services.redis.zrem(self.key, self.member)
        except Exception:  # the lease expires by itself
            return


def key_check(services: Services, key_id: str) -> Callable[[], Awaitable[bool]]:
    """Whether the caller's key still works (always, with authentication off, or SQL away)."""

    async def live() -> bool:
        if not services.settings.auth_enabled:
            return True
        try:
            return await run_in_threadpool(key_is_live, services, key_id)
        except Exception:  # an outage must not end every stream
            return True

    return live


async def guarded(
    feed: AsyncGenerator[bytes, None], slot: StreamSlot, key_live: Callable[[], Awaitable[bool]]
) -> AsyncIterator[bytes]:
    """``feed``, ended early if the key is revoked; the slot is renewed, then released."""
    pending: asyncio.Future[bytes] | None = None
    next_check = time.monotonic() + CHECK_EVERY
    renewed = time.monotonic()
    try:
        while True:
            if pending is None:
                pending = asyncio.ensure_future(feed.__anext__())
            await asyncio.wait({pending}, timeout=max(0.0, next_check - time.monotonic()))
            if pending.done():
                done, pending = pending, None
                try:
                    chunk = done.result()
                except StopAsyncIteration:
                    return
                yield chunk
            if time.monotonic() < next_check:
                continue
            if not await key_live():
                message = "the API key was revoked; this stream is closed"
                yield sse("closed", {"code": "invalid_api_key", "message": message})
                return
            next_check = time.monotonic() + CHECK_EVERY
            if time.monotonic() - renewed > LEASE_SECONDS / 3:
                await slot.renew()
                renewed = time.monotonic()
    finally:
        # Shielded: when the client goes, the server cancels this, and cancels again every
        # await left in it; the slot must still be given back.
        with anyio.CancelScope(shield=True):
            if pending is not None:
                pending.cancel()
                await asyncio.wait({pending})
            await feed.aclose()
            await slot.release()
