"""Service routes: alive, ready (naming what is down); unknown routes and methods.

The OpenAPI document is held to its contract in tests/test_api_contract.py."""

from __future__ import annotations

from collections.abc import Callable

import httpx

from cli.embedded import free_port
from tests.support.api import ApiServer
from tests.support.stack import service_env


def test_ready_when_sql_and_redis_answer(shared_api: ApiServer) -> None:
    r = httpx.get(shared_api.url + "/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ready", "checks": {"sql": "ok", "redis": "ok"}}


def test_not_ready_names_redis_when_it_is_down_but_stays_alive(
    shared_database_url: str, api_server: Callable[[dict[str, str]], ApiServer]
) -> None:
    env = service_env(
        database_url=shared_database_url,
        redis_url=f"redis://127.0.0.1:{free_port()}/0",
        prefix="aivtest-down",
    )
    server = api_server(env)
    assert httpx.get(server.url + "/healthz").json() == {"status": "ok"}
    r = httpx.get(server.url + "/readyz")
    assert r.status_code == 503
    assert r.json()["checks"]["sql"] == "ok"
    assert r.json()["checks"]["redis"].startswith("down: ")


def test_unknown_route_and_wrong_method_use_the_error_shape(shared_api: ApiServer) -> None:
    missing = httpx.get(shared_api.url + "/v2/nothing")
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    wrong = httpx.put(shared_api.url + "/healthz")
    assert wrong.status_code == 405 and wrong.json()["error"]["code"] == "method_not_allowed"
