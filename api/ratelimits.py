"""Request rates per API key and failed authentications per client address, counted in
Redis so that every API process shares them.

The windows are the ``limits`` package's sliding-window counters: two counters per key
updated by one Lua script, so a limit holds across processes without a race, smooths
the burst a fixed window allows at its edges, and costs O(1) memory per key (a moving
window keeps one entry per request). If Redis does not answer, the limits fail open: the
request goes on, and api/outages.py logs the outage once.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass

import redis.asyncio as aioredis
from limits import RateLimitItem, RateLimitItemPerMinute, RateLimitItemPerSecond
from limits.aio.storage import RedisStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.errors import StorageError

from api.outages import REDIS, REDIS_UNAVAILABLE, Outages
from models.rediskeys import RedisKeys
from models.settings import Settings

# A Redis that hangs (rather than refuses) must not hold every request: past this, a check
# counts as Redis being away.
CHECK_TIMEOUT = 1.0
# What a limit check meets when Redis is away.
_REDIS_DOWN: tuple[type[Exception], ...] = (StorageError, *REDIS_UNAVAILABLE)


@dataclass(frozen=True, slots=True)
class Window:
    """Where a caller stands in a limit's window."""

    allowed: bool
    limit: int
    remaining: int
    reset_seconds: float

    def headers(self, kind: str = "requests") -> dict[str, str]:
        """OpenAI's ``x-ratelimit-*`` headers for this window."""
        return {
            f"x-ratelimit-limit-{kind}": str(self.limit),
            f"x-ratelimit-remaining-{kind}": str(self.remaining),
            f"x-ratelimit-reset-{kind}": f"{self.reset_seconds:.3f}s",
        }

    @property
    def retry_after(self) -> int:
        """Whole seconds until the window lets a request through."""
        return max(1, math.ceil(self.reset_seconds))


class RateLimits:
    """The API's request-rate limits."""

    def __init__(
        self, settings: Settings, redis: aioredis.Redis, keys: RedisKeys, outages: Outages
    ) -> None:
        storage = RedisStorage(
            "async+" + settings.redis_url,
            implementation="redispy",
            key_prefix=keys.limits,
            wrap_exceptions=True,
            connection_pool=redis.connection_pool,  # type: ignore[arg-type]
        )
        self.limiter = SlidingWindowCounterRateLimiter(storage)
        self.per_key = RateLimitItemPerSecond(settings.key_requests_per_second)
        self.auth_failures = RateLimitItemPerMinute(settings.auth_failures_per_minute)
        self.outages = outages

    async def request(self, key_id: str) -> Window | None:
        """Count one request of ``key_id``; None when Redis does not answer."""
        return await self._hit(self.per_key, "key", key_id)

    async def auth_blocked(self, address: str) -> Window | None:
        """The failed-authentication window of ``address`` if it is used up, else None."""
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                if await self.limiter.test(self.auth_failures, "auth", address):
                    self.outages.up(REDIS)
                    return None
                return await self._window(self.auth_failures, False, "auth", address)
        except _REDIS_DOWN as exc:
            self.outages.down(REDIS, exc)
            return None

    async def auth_failed(self, address: str) -> None:
        """Count one failed authentication of ``address``."""
        await self._hit(self.auth_failures, "auth", address)

    async def _hit(self, item: RateLimitItem, *identifiers: str) -> Window | None:
        try:
            async with asyncio.timeout(CHECK_TIMEOUT):
                allowed = await self.limiter.hit(item, *identifiers)
                window = await self._window(item, allowed, *identifiers)
        except _REDIS_DOWN as exc:
            self.outages.down(REDIS, exc)
            return None
        self.outages.up(REDIS)
        return window

    async def _window(self, item: RateLimitItem, allowed: bool, *identifiers: str) -> Window:
        stats = await self.limiter.get_window_stats(item, *identifiers)
        reset = max(0.0, stats.reset_time - time.time())
        return Window(allowed, item.amount, max(0, stats.remaining), reset)
