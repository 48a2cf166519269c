"""Limits per upstream that hold for the whole deployment, kept in Redis.

- ``max_in_flight``: a permit per open stream, in a sorted set scored by when its lease ends
  (Redis server time, so workers' clocks do not matter). A Lua script drops expired members
  and grants what fits, atomically; the holder renews its permits with its job leases, and
  a worker that is killed stops renewing, so its permits come back by themselves within a
  lease.
- ``requests_per_minute``: the ``limits`` package's moving window over Redis (its async
  storage runs on redis-py's asyncio client, so it shares this worker's connection pool).
- a 429 with Retry-After pauses the upstream for everyone: a key with that TTL.

``admit`` decides, before a worker claims a dispatched group, which of its jobs may start
now; the others go back to the queue untouched, so a worker never holds a stream slot for a
job that waits on a full upstream.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from limits import RateLimitItemPerMinute
from limits.aio.storage import RedisStorage
from limits.aio.strategies import MovingWindowRateLimiter

from models.rediskeys import RedisKeys
from models.routing import Routing
from models.upstreams import Upstream

# KEYS[1] permits; ARGV: lease ms, limit, member...; returns the members granted.
_ACQUIRE = """
redis.replicate_commands()
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local lease = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local n = redis.call('ZCARD', KEYS[1])
local granted = {}
for i = 3, #ARGV do
  if redis.call('ZSCORE', KEYS[1], ARGV[i]) then
    redis.call('ZADD', KEYS[1], now + lease, ARGV[i])
    table.insert(granted, ARGV[i])
  elseif n < limit then
    redis.call('ZADD', KEYS[1], now + lease, ARGV[i])
    n = n + 1
    table.insert(granted, ARGV[i])
  end
end
redis.call('PEXPIRE', KEYS[1], lease * 2)
return granted
"""
# KEYS[1] permits; ARGV: lease ms, member...: extend the leases of the members still held.
_RENEW = """
redis.replicate_commands()
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local lease = tonumber(ARGV[1])
for i = 2, #ARGV do
  redis.call('ZADD', KEYS[1], 'XX', now + lease, ARGV[i])
end
redis.call('PEXPIRE', KEYS[1], lease * 2)
return 1
"""
# KEYS[1] pause key; ARGV[1] ms: set the pause unless a longer one is already set.
_PAUSE = """
local left = redis.call('PTTL', KEYS[1])
if left < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[1])
end
return 1
"""


@dataclass(frozen=True, slots=True)
class Waiting:
    """A dispatched job and the upstream it would start on."""

    job_id: int
    upstream: str | None


@dataclass(slots=True)
class Admission:
    """Which jobs may start now (with the upstream whose permit they hold), and which must
    wait: job id → seconds until it is worth dispatching again."""

    admitted: dict[int, str | None]
    deferred: dict[int, float]


class UpstreamLimits:
    """The deployment-wide limits of every upstream, as one worker process sees them."""

    def __init__(
        self,
        client: aioredis.Redis,
        keys: RedisKeys,
        routing: Routing,
        *,
        owner: str,
        lease_seconds: float,
    ) -> None:
        self.client = client
        self.keys = keys
        self.routing = routing
        self.owner = owner
        self.lease_ms = max(1000, int(lease_seconds * 1000))
        self._acquire = client.register_script(_ACQUIRE)
        self._renew = client.register_script(_RENEW)
        self._pause = client.register_script(_PAUSE)
        shared: dict[str, Any] = {"connection_pool": client.connection_pool}
        storage = RedisStorage(
            "async+redis://", implementation="redispy", key_prefix=keys.upstream_prefix, **shared
        )
        self.limiter = MovingWindowRateLimiter(storage)

    def member(self, job_id: int) -> str:
        """This process's permit name for a job."""
        return f"{self.owner}:{job_id}"

    async def admit(self, waiting: Iterable[Waiting]) -> Admission:
        """Take permits and request slots for the jobs that may start now."""
        result = Admission({}, {})
        by_upstream: dict[str, list[int]] = {}
        for job in waiting:
            upstream = self.routing.upstreams.get(job.upstream or "")
            if upstream is None:
                result.admitted[job.job_id] = None  # the worker routes (or refuses) it itself
            else:
                by_upstream.setdefault(upstream.name, []).append(job.job_id)
        if not by_upstream:
            return result
        pauses = await self.paused(by_upstream)
        for name, job_ids in by_upstream.items():
            if pauses.get(name, 0) > 0:
                result.deferred.update(dict.fromkeys(job_ids, pauses[name]))
                continue
            await self._admit_to(self.routing.upstreams[name], job_ids, result)
        return result

    async def _admit_to(self, upstream: Upstream, job_ids: list[int], result: Admission) -> None:
        granted = job_ids
        if upstream.max_in_flight is not None:
            members = [self.member(j) for j in job_ids]
            raw = await self._acquire(
                keys=[self.keys.upstream_permits(upstream.name)],
                args=[self.lease_ms, upstream.max_in_flight, *members],
            )
            taken = {m.decode() if isinstance(m, bytes) else str(m) for m in raw}
            granted = [j for j, m in zip(job_ids, members, strict=True) if m in taken]
        wait = 0.5
        if upstream.requests_per_minute is not None:
            item = RateLimitItemPerMinute(upstream.requests_per_minute)
            fits = []
            for job_id in granted:
                if await self.limiter.hit(item, upstream.name):
                    fits.append(job_id)
            if len(fits) < len(granted):
                stats = await self.limiter.get_window_stats(item, upstream.name)
                wait = max(wait, stats.reset_time - time.time())
                await self.release(upstream.name, [j for j in granted if j not in fits])
            granted = fits
        result.admitted.update(dict.fromkeys(granted, upstream.name))
        kept = set(granted)
        result.deferred.update({j: wait for j in job_ids if j not in kept})

    async def paused(self, names: Iterable[str]) -> dict[str, float]:
        """Seconds each upstream stays paused (0 when it is not)."""
        names = list(names)
        pipe = self.client.pipeline(transaction=False)
        for name in names:
            pipe.pttl(self.keys.upstream_paused(name))
        left = await pipe.execute()
        return {name: max(0, int(ms)) / 1000 for name, ms in zip(names, left, strict=True)}

    async def pause(self, name: str, seconds: float) -> None:
        """Ask every worker to leave ``name`` alone for ``seconds`` (a 429's Retry-After)."""
        if seconds > 0:
            await self._pause(keys=[self.keys.upstream_paused(name)], args=[int(seconds * 1000)])

    async def renew(self, held: dict[str, list[int]]) -> None:
        """Extend the leases of the permits this process holds (upstream → job ids)."""
        for name, job_ids in held.items():
            if job_ids:
                members = [self.member(j) for j in job_ids]
                await self._renew(
                    keys=[self.keys.upstream_permits(name)], args=[self.lease_ms, *members]
                )

    async def release(self, name: str | None, job_ids: Iterable[int]) -> None:
        """Give permits back (a stream ended, or a job did not start after all)."""
        upstream = self.routing.upstreams.get(name or "")
        members = [self.member(j) for j in job_ids]
        if upstream is not None and upstream.max_in_flight is not None and members:
            await self.client.zrem(self.keys.upstream_permits(upstream.name), *members)
