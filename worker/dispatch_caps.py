"""How many jobs the dispatcher may hand out per upstream: what its limits leave free.

The workers' permits (worker/upstream_limits.py) are what enforce an upstream's limits; the
dispatcher only avoids handing workers jobs they would have to hand back: none for an
upstream that asked to be left alone (a 429's Retry-After), no more than ``max_in_flight``
dispatched or running, no more than the requests its ``requests_per_minute`` window has left.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis
from limits import RateLimitItemPerMinute
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter

from models.rediskeys import RedisKeys
from models.routing import Routing


@dataclass(frozen=True, slots=True)
class UpstreamState:
    """What Redis says of the limited upstreams: paused ones, requests left this minute."""

    paused: frozenset[str]
    requests_left: dict[str, int]


class DispatchCaps:
    """Reads the upstreams' state from Redis and turns it into allowances."""

    def __init__(self, routing: Routing, client: redis.Redis, keys: RedisKeys) -> None:
        self.routing = routing
        self.client = client
        self.keys = keys
        shared: dict[str, Any] = {"connection_pool": client.connection_pool}
        storage = RedisStorage("redis://", key_prefix=keys.upstream_prefix, **shared)
        self.limiter = MovingWindowRateLimiter(storage)

    def state(self) -> UpstreamState:
        """The paused upstreams and each rate-limited one's requests left (one round trip
        for the pauses, one per rate-limited upstream)."""
        names = [u.name for u in self.routing]
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.pttl(self.keys.upstream_paused(name))
        left = pipe.execute()
        paused = frozenset(n for n, ms in zip(names, left, strict=True) if int(ms) > 0)
        requests_left = {}
        for upstream in self.routing:
            if upstream.requests_per_minute is not None:
                item = RateLimitItemPerMinute(upstream.requests_per_minute)
                stats = self.limiter.get_window_stats(item, upstream.name)
                requests_left[upstream.name] = stats.remaining
        return UpstreamState(paused, requests_left)

    def allowance(
        self, state: UpstreamState, in_flight: dict[str | None, tuple[int, int]]
    ) -> dict[str, int]:
        """Jobs each capped upstream may still be handed (uncapped upstreams are absent)."""
        allowed: dict[str, int] = {}
        for upstream in self.routing:
            total, waiting = in_flight.get(upstream.name, (0, 0))
            caps = []
            if upstream.name in state.paused:
                caps.append(0)
            if upstream.max_in_flight is not None:
                caps.append(upstream.max_in_flight - total)
            if upstream.name in state.requests_left:
                caps.append(state.requests_left[upstream.name] - waiting)
            if caps:
                allowed[upstream.name] = max(0, min(caps))
        return allowed
