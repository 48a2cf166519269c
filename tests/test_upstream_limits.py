"""Limits per upstream held in a real Redis: permits two workers share, leases that give a
dead worker's permits back, the pause a 429 asks for, requests per minute, and what the
dispatcher may hand out. Through whole stacks with the emulator: test_upstreams_stack.py.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import redis
import redis.asyncio as aioredis

from models.rediskeys import RedisKeys
from models.routing import Routing
from models.upstreams import Upstream
from worker.dispatch_caps import DispatchCaps
from worker.upstream_limits import UpstreamLimits, Waiting

T = TypeVar("T")

LIMITED = Upstream("busy", "openai", "http://127.0.0.1:9/v1", ("m",), max_in_flight=3)
PACED = Upstream("paced", "openai", "http://127.0.0.1:9/v1", ("p",), requests_per_minute=2)
FREE = Upstream("free", "openai", "http://127.0.0.1:9/v1", ("f",))
ROUTING = Routing([LIMITED, PACED, FREE])


def with_limits(
    redis_url: str, prefix: str, body: Callable[..., Awaitable[T]], lease: float = 1.0
) -> T:
    """Run ``body(a, b)``: two workers' limits on one Redis and prefix."""

    async def main() -> T:
        client = aioredis.Redis.from_url(redis_url)
        keys = RedisKeys(prefix)
        try:
            a = UpstreamLimits(client, keys, ROUTING, owner="host:1:a", lease_seconds=lease)
            b = UpstreamLimits(client, keys, ROUTING, owner="host:2:b", lease_seconds=lease)
            return await body(a, b)
        finally:
            await client.aclose()

    return asyncio.run(main())


def jobs(upstream: str, *ids: int) -> list[Waiting]:
    return [Waiting(i, upstream) for i in ids]


def test_two_workers_share_max_in_flight_and_a_release_frees_a_permit(
    redis_url: str, redis_prefix: str
) -> None:
    async def body(a: UpstreamLimits, b: UpstreamLimits) -> None:
        first = await a.admit(jobs("busy", 1, 2))
        assert list(first.admitted) == [1, 2] and first.admitted[1] == "busy"
        second = await b.admit(jobs("busy", 3, 4, 5) + jobs("free", 6))
        assert set(second.admitted) == {3, 6}
        assert set(second.deferred) == {4, 5} and all(0 < s <= 1 for s in second.deferred.values())
        again = await b.admit(jobs("busy", 4))
        assert not again.admitted
        await a.release("busy", [1])
        assert list((await b.admit(jobs("busy", 4))).admitted) == [4]

    with_limits(redis_url, redis_prefix, body)


def test_a_dead_workers_permits_come_back_after_the_lease_and_renewed_ones_do_not(
    redis_url: str, redis_prefix: str
) -> None:
    async def body(a: UpstreamLimits, b: UpstreamLimits) -> float:
        assert len((await a.admit(jobs("busy", 1, 2, 3))).admitted) == 3
        # a keeps job 3's permit alive and "dies" holding 1 and 2: it never renews those.
        started = time.monotonic()
        got: list[int] = []
        while len(got) < 2 and time.monotonic() - started < 5:
            await a.renew({"busy": [3]})
            got += list(
                (await b.admit(jobs("busy", *[i for i in (7, 8) if i not in got]))).admitted
            )
            await asyncio.sleep(0.1)
        waited = time.monotonic() - started
        assert sorted(got) == [7, 8], got
        assert not (await b.admit(jobs("busy", 9))).admitted  # 3 is still held, renewed
        return waited

    waited = with_limits(redis_url, redis_prefix, body, lease=1.0)
    assert 0.7 <= waited <= 3, waited


def test_a_pause_holds_every_worker_off_until_it_expires(redis_url: str, redis_prefix: str) -> None:
    async def body(a: UpstreamLimits, b: UpstreamLimits) -> None:
        await a.pause("free", 1.0)
        await a.pause("free", 0.2)  # a shorter pause never cuts a longer one
        held = await b.admit(jobs("free", 1) + jobs("busy", 2))
        assert list(held.admitted) == [2]
        assert 0.5 < held.deferred[1] <= 1.0
        started = time.monotonic()
        while not (await b.admit(jobs("free", 1))).admitted:
            assert time.monotonic() - started < 3
            await asyncio.sleep(0.05)
        assert time.monotonic() - started > 0.4

    with_limits(redis_url, redis_prefix, body)


def test_requests_per_minute_is_one_window_for_every_worker(
    redis_url: str, redis_prefix: str
) -> None:
    async def body(a: UpstreamLimits, b: UpstreamLimits) -> None:
        assert list((await a.admit(jobs("paced", 1))).admitted) == [1]
        late = await b.admit(jobs("paced", 2, 3))
        assert list(late.admitted) == [2]
        assert 55 < late.deferred[3] <= 60

    with_limits(redis_url, redis_prefix, body)


def test_the_dispatcher_hands_out_what_the_limits_leave(redis_url: str, redis_prefix: str) -> None:
    async def fill(a: UpstreamLimits, _b: UpstreamLimits) -> None:
        await a.admit(jobs("paced", 1))
        await a.pause("free", 5)

    with_limits(redis_url, redis_prefix, fill)
    client = redis.Redis.from_url(redis_url)
    try:
        caps = DispatchCaps(ROUTING, client, RedisKeys(redis_prefix))
        state = caps.state()
        assert state.paused == {"free"} and state.requests_left == {"paced": 1}
        in_flight: dict[str | None, Any] = {"busy": (2, 1), "paced": (0, 0)}
        assert caps.allowance(state, in_flight) == {"busy": 1, "paced": 1, "free": 0}
        assert caps.allowance(state, {"busy": (5, 0), "paced": (1, 1)}) == {
            "busy": 0,
            "paced": 0,
            "free": 0,
        }
    finally:
        client.close()
