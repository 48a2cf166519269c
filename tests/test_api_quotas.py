"""Limits per tenant, answered 429 with Retry-After (and OpenAI's x-ratelimit-* headers for
request rates), counted across API processes: requests per second per key, failed
authentications per client address, open event streams, unfinished batches and the
requests they hold, stored file bytes."""

from __future__ import annotations

import io
import json
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack

import httpx
import pytest
import redis

from models.migrate import upgrade
from tests.support.api import ApiServer, ApiServers, Tenants
from tests.support.stack import service_env
from tests.support.wait import wait_until

LINE = {"custom_id": "a", "messages": [{"role": "user", "content": "hi"}]}


def _assert_429(r: httpx.Response, code: str, setting: str) -> None:
    assert r.status_code == 429, r.text
    assert int(r.headers["retry-after"]) >= 1
    error = r.json()["error"]
    assert error["code"] == code and setting in error["message"]
    assert error["type"] == "rate_limit_error"


@pytest.fixture(scope="module")
def rate_apis(
    tmp_path_factory: pytest.TempPathFactory, redis_url: str
) -> Iterator[tuple[Callable[..., ApiServer], Tenants]]:
    """API processes on one SQLite file: request rates are counted in Redis alone, so one
    backend shows them."""
    folder = tmp_path_factory.mktemp("rates")
    url = f"sqlite:///{folder / 'aivbatch.db'}"
    upgrade(url)
    prefix = f"aivtest-{uuid.uuid4().hex[:10]}"
    servers = ApiServers(folder)

    def make(**settings: str) -> ApiServer:
        env = service_env(database_url=url, redis_url=redis_url, prefix=prefix, settings=settings)
        return servers.start(env)

    yield make, Tenants(url)
    servers.stop_all()
    client = redis.Redis.from_url(redis_url)
    for key in client.scan_iter(match=f"{prefix}:*", count=1000):
        client.delete(key)
    client.close()


def test_requests_per_second_per_key_across_api_processes(
    rate_apis: tuple[Callable[..., ApiServer], Tenants],
) -> None:
    start, tenants = rate_apis
    first, second = start(KEY_REQUESTS_PER_SECOND="4"), start(KEY_REQUESTS_PER_SECOND="4")
    key = tenants.key()
    clients = [first.client(key), second.client(key)]
    # At once, so that they all fall in one second however slow the machine is.
    with ThreadPoolExecutor(12) as pool:
        answers = list(pool.map(lambda i: clients[i % 2].get("/v1/batches"), range(12)))
    statuses = [r.status_code for r in answers]
    assert statuses.count(200) >= 4 and statuses.count(429) >= 4, statuses
    ok = answers[0]
    assert ok.headers["x-ratelimit-limit-requests"] == "4"
    assert int(ok.headers["x-ratelimit-remaining-requests"]) <= 3
    assert ok.headers["x-ratelimit-reset-requests"].endswith("s")
    refused = next(r for r in answers if r.status_code == 429)
    _assert_429(refused, "rate_limit_exceeded", "AIVBATCH_KEY_REQUESTS_PER_SECOND")
    assert refused.headers["x-ratelimit-remaining-requests"] == "0"
    # Another key has its own window.
    assert first.client(tenants.key()).get("/v1/batches").status_code == 200


def test_failed_authentications_per_address(
    rate_apis: tuple[Callable[..., ApiServer], Tenants],
) -> None:
    start, tenants = rate_apis
    api = start(AUTH_FAILURES_PER_MINUTE="3")
    good = tenants.key()
    for _ in range(3):
        wrong = httpx.get(api.url + "/v1/batches", headers={"Authorization": "Bearer aivb-guess"})
        assert wrong.status_code == 401
    blocked = httpx.get(api.url + "/v1/batches", headers={"Authorization": "Bearer aivb-guess"})
    _assert_429(blocked, "too_many_failed_authentications", "AIVBATCH_AUTH_FAILURES_PER_MINUTE")
    # Even a good key: a guesser must not learn which of its guesses was right.
    with_good = httpx.get(api.url + "/v1/batches", headers={"Authorization": f"Bearer {good}"})
    assert with_good.status_code == 429


@pytest.fixture(scope="module")
def quota_api(module_api: Callable[..., ApiServer]) -> ApiServer:
    return module_api(
        TENANT_MAX_STREAMS="2",
        TENANT_MAX_OPEN_BATCHES="2",
        TENANT_MAX_QUEUED_REQUESTS="5",
        TENANT_MAX_STORED_BYTES="400",
        KEY_REQUESTS_PER_SECOND="10000",
    )


def test_open_event_streams_per_tenant(quota_api: ApiServer, tenants: Tenants) -> None:
    key = tenants.key()
    client = quota_api.client(key)
    batch = client.post("/v1/batches", json={"requests": [LINE]}).json()
    path = f"/v1/batches/{batch['id']}/events"
    with ExitStack() as held:
        for _ in range(2):
            stream = held.enter_context(client.stream("GET", path))
            assert stream.status_code == 200
        _assert_429(client.get(path), "too_many_streams", "AIVBATCH_TENANT_MAX_STREAMS")
        # Another tenant is not held back by this one.
        other = quota_api.client(tenants.key())
        other_batch = other.post("/v1/batches", json={"requests": [LINE]}).json()
        with other.stream("GET", f"/v1/batches/{other_batch['id']}/events") as theirs:
            assert theirs.status_code == 200

    def reopened() -> bool:
        with client.stream("GET", path) as again:
            return again.status_code == 200

    # Closed streams give their slots back, once the server notices they are closed.
    wait_until(reopened, timeout=10, what="a closed stream's slot to be free again")


def test_unfinished_batches_and_their_requests_per_tenant(
    quota_api: ApiServer, tenants: Tenants
) -> None:
    client = quota_api.client(tenants.key())
    three = [{**LINE, "custom_id": f"r{i}"} for i in range(3)]
    assert client.post("/v1/batches", json={"requests": three}).status_code == 200
    too_many = client.post("/v1/batches", json={"requests": three})
    _assert_429(too_many, "quota_exceeded", "AIVBATCH_TENANT_MAX_QUEUED_REQUESTS")
    assert client.post("/v1/batches", json={"requests": three[:2]}).status_code == 200
    third = client.post("/v1/batches", json={"requests": [LINE]})
    _assert_429(third, "quota_exceeded", "AIVBATCH_TENANT_MAX_OPEN_BATCHES")
    assert len(client.get("/v1/batches").json()["data"]) == 2


def test_stored_bytes_per_tenant(quota_api: ApiServer, tenants: Tenants) -> None:
    client = quota_api.client(tenants.key())
    content = json.dumps(LINE).encode()  # 70 bytes

    def upload() -> httpx.Response:
        files = {"file": ("in.jsonl", io.BytesIO(content))}
        return client.post("/v1/files", data={"purpose": "batch"}, files=files)

    kept = [upload() for _ in range(5)]
    assert [r.status_code for r in kept] == [200] * 5
    _assert_429(upload(), "quota_exceeded", "AIVBATCH_TENANT_MAX_STORED_BYTES")
    client.delete(f"/v1/files/{kept[0].json()['id']}")
    assert upload().status_code == 200
