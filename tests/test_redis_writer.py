"""The worker's Redis writer against a real Redis that refuses writes for a while."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
import redis
import redis.asyncio as aioredis

from cli.embedded import EmbeddedRedis
from models.jobs import ClaimedJob, Outcome
from models.rediskeys import RedisKeys
from models.states import JobStatus
from tests.support.pipeline import read_stream
from worker.events import announce_outcome
from worker.redis_writer import RedisWriter

JOB = ClaimedJob(1, "batch_x", "q1", 1, "gpt-3.5-turbo", [], None, None)


@pytest.fixture
def server() -> Iterator[EmbeddedRedis]:
    with EmbeddedRedis.start() as started:
        yield started


def test_a_stream_that_lost_writes_is_rewritten_whole_when_its_job_ends(
    server: EmbeddedRedis,
) -> None:
    keys = RedisKeys("aivwriter")
    key = keys.job_stream(JOB.batch_id, JOB.custom_id)
    admin = redis.Redis.from_url(server.url)

    async def run() -> None:
        client = aioredis.Redis.from_url(server.url)
        writer = RedisWriter(client, flush_ms=25, retention=600, probe_every=0)
        writer.chunk(key, 1, "Hello, ", 0)
        await writer.flush()
        # Out of memory: Redis refuses the next write, which is dropped (not retried).
        admin.config_set("maxmemory-policy", "noeviction")
        admin.config_set("maxmemory", 1)
        writer.chunk(key, 1, "brave ", 7)
        await writer.flush()
        assert writer.dropped == 1 and key in writer.damaged
        admin.config_set("maxmemory", 0)
        writer.chunk(key, 1, "new world", 13)
        await writer.flush(probe=True)
        output = "Hello, brave new world"
        done = Outcome(1, 1, JobStatus.SUCCEEDED, output=output, chars_out=len(output))
        announce_outcome(writer, keys, JOB, done)
        await writer.flush()
        await client.aclose()

    asyncio.run(run())
    view = read_stream(admin, keys, JOB.batch_id, JOB.custom_id)
    admin.close()
    assert view.text_of(1) == "Hello, brave new world"
    assert [e["event"] for e in view.entries] == ["chunk", "done"]


def test_a_stream_has_its_time_to_live_from_its_first_chunk_and_afresh_at_its_end(
    server: EmbeddedRedis,
) -> None:
    keys = RedisKeys("aivttl")
    key = keys.job_stream(JOB.batch_id, JOB.custom_id)
    admin = redis.Redis.from_url(server.url)
    ttls: list[int] = []

    async def run() -> None:
        client = aioredis.Redis.from_url(server.url)
        writer = RedisWriter(client, flush_ms=25, retention=600, probe_every=0)
        writer.chunk(key, 1, "Hello, ", 0)
        await writer.flush()
        ttls.append(admin.ttl(key))
        # Later chunks leave it be; the terminal entry sets it again, from the end.
        admin.expire(key, 300)
        writer.chunk(key, 1, "world", 7)
        await writer.flush()
        ttls.append(admin.ttl(key))
        done = Outcome(1, 1, JobStatus.SUCCEEDED, output="Hello, world", chars_out=12)
        announce_outcome(writer, keys, JOB, done)
        writer.forget(key)
        await writer.flush()
        ttls.append(admin.ttl(key))
        await client.aclose()

    asyncio.run(run())
    events_ttl = admin.ttl(keys.batch_events(JOB.batch_id))
    admin.close()
    assert 590 <= ttls[0] <= 600 and 290 <= ttls[1] <= 300 and 590 <= ttls[2] <= 600, ttls
    assert 590 <= events_ttl <= 600
