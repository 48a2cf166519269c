"""SQL or Redis really stopped under a running API (auth on): what needs it answers 503
service_unavailable with Retry-After, the log holds one line when the outage starts and
one when it ends (no traceback), and the API recovers by itself."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from models.db import Database
from models.migrate import upgrade
from tests.support.api import ApiServer, new_key
from tests.support.outages import StoppablePostgres, StoppableRedis
from tests.support.stack import service_env
from tests.support.wait import wait_until

LINE = {"custom_id": "a", "messages": [{"role": "user", "content": "hi"}]}


def _assert_503(r: httpx.Response) -> None:
    assert r.status_code == 503, r.text
    assert int(r.headers["retry-after"]) >= 1 and r.headers["x-request-id"]
    assert r.json()["error"]["code"] == "service_unavailable"


def _started(
    api_server: Callable[[dict[str, str]], ApiServer], database_url: str, redis_url: str
) -> tuple[ApiServer, httpx.Client]:
    prefix = f"aivtest-{uuid.uuid4().hex[:10]}"
    server = api_server(service_env(database_url=database_url, redis_url=redis_url, prefix=prefix))
    db = Database.from_url(database_url)
    try:
        key = new_key(db, "outage")
    finally:
        db.dispose()
    return server, server.client(key, timeout=20)


def test_redis_stopped_events_answer_503_the_rest_serves_and_it_recovers(
    api_server: Callable[[dict[str, str]], ApiServer],
    stoppable_redis: StoppableRedis,
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path / 'redis-outage.db'}"
    upgrade(url)
    server, api = _started(api_server, url, stoppable_redis.url)
    batch = api.post("/v1/batches", json={"requests": [LINE]}).json()
    events = f"/v1/batches/{batch['id']}/events"

    stoppable_redis.stop()
    for _ in range(3):
        _assert_503(api.get(events))
    # What needs only SQL goes on; the rate limits fail open.
    listed = api.get("/v1/batches")
    assert listed.status_code == 200 and "x-ratelimit-limit-requests" not in listed.headers
    assert api.get(f"/v1/batches/{batch['id']}").status_code == 200

    stoppable_redis.start()
    wait_until(
        lambda: api.get(f"/v1/batches/{batch['id']}").headers.get("x-ratelimit-limit-requests"),
        timeout=20,
        what="the rate limits to be counted again",
    )
    with api.stream("GET", events) as stream:
        assert stream.status_code == 200
    log = server.text()
    assert log.count("Redis is unavailable") == 1, log
    assert log.count("Redis answers again") == 1, log
    assert "Traceback" not in log


@pytest.mark.slow
def test_postgres_stopped_answers_503_and_recovers(
    api_server: Callable[[dict[str, str]], ApiServer],
    stoppable_postgres: StoppablePostgres,
    redis_url: str,
) -> None:
    upgrade(stoppable_postgres.url)
    server, api = _started(api_server, stoppable_postgres.url, redis_url)
    batch = api.post("/v1/batches", json={"requests": [LINE]}).json()
    path = f"/v1/batches/{batch['id']}"

    stoppable_postgres.stop()
    for _ in range(5):
        _assert_503(api.get(path))
    _assert_503(api.post("/v1/batches", json={"requests": [LINE]}))
    assert httpx.get(server.url + "/healthz").status_code == 200
    assert httpx.get(server.url + "/readyz").status_code == 503

    stoppable_postgres.start()
    wait_until(
        lambda: api.get(path).status_code == 200, timeout=30, what="the API to use SQL again"
    )
    log = server.text()
    assert log.count("SQL is unavailable") == 1, log
    assert log.count("SQL answers again") == 1, log
    assert "Traceback" not in log
