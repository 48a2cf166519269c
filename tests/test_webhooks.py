"""Webhooks end to end: real API, worker and dispatcher processes, a real receiving server
that verifies every signature with `standardwebhooks`, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from standardwebhooks.webhooks import WebhookVerificationError

from models.db import Database
from models.deliveries import Due
from models.settings import Settings
from models.tables import WebhookDelivery, WebhookEvent
from models.types import utcnow
from tests.support.api import AIVBATCH
from tests.support.receiver import HANG, Receiver
from tests.support.service import Service
from tests.support.wait import wait_until
from worker.webhooks import WebhookSender

pytestmark = pytest.mark.slow

ENDED = ("completed", "failed", "cancelled", "expired")
FAST = {
    "WEBHOOK_ALLOW_PRIVATE": "true",
    "WEBHOOK_TIMEOUT": "2",
    "WEBHOOK_RETRY_BASE_DELAY": "1",
    "WEBHOOK_RETRY_MAX_DELAY": "2",
}


@pytest.fixture(scope="module")
def service(module_service: Callable[..., Service]) -> Service:
    return module_service(settings=FAST)


def _batch(api: httpx.Client, n: int = 2, **options: str) -> str:
    requests = [
        {"custom_id": f"q{i}", "messages": [{"role": "user", "content": f"Вопрос {i}"}]}
        for i in range(n)
    ]
    r = api.post("/v1/batches", json={"requests": requests, **options})
    assert r.status_code == 200, r.text
    return str(r.json()["id"])


def _ended(api: httpx.Client, batch_id: str) -> Any:
    return wait_until(
        lambda: (b := api.get(f"/v1/batches/{batch_id}").json())["status"] in ENDED and b,
        30,
        f"batch {batch_id} to end",
    )


def _register(api: httpx.Client, url: str, **extra: object) -> dict[str, object]:
    r = api.post("/v1/webhooks", json={"url": url, **extra})
    assert r.status_code == 200, r.text
    return dict(r.json())


def _events_of(database_url: str, batch_id: str) -> list[WebhookEvent]:
    db = Database.from_url(database_url)
    try:
        with db.read() as s:
            return list(s.scalars(select(WebhookEvent).where(WebhookEvent.batch_id == batch_id)))
    finally:
        db.dispose()


def _deliveries(database_url: str, event_id: str) -> list[WebhookDelivery]:
    db = Database.from_url(database_url)
    try:
        with db.read() as s:
            return list(
                s.scalars(select(WebhookDelivery).where(WebhookDelivery.event_id == event_id))
            )
    finally:
        db.dispose()


def test_a_receiver_that_fails_twice_gets_the_signed_event_on_the_third_try(
    service: Service, receiver: Callable[..., Receiver]
) -> None:
    api = service.tenant()
    flaky = receiver(500, 503)
    endpoint = _register(api, flaky.url, description="flaky")
    secret = str(endpoint["secret"])
    assert secret.startswith("whsec_") and endpoint["events"] == [
        "batch.completed",
        "batch.failed",
        "batch.expired",
        "batch.cancelled",
    ]
    batch_id = _batch(api)
    _ended(api, batch_id)

    # While it fails, the endpoint shows the failure and when the next try is due.
    def failing() -> Any:
        [row] = api.get("/v1/webhooks").json()["data"]
        return row if row["delivery"]["last_status_code"] in (500, 503) else None

    row = wait_until(failing, timeout=30, what="a failed try to show")
    assert row["delivery"]["pending"] == 1 and row["delivery"]["next_attempt_at"] is not None
    assert "HTTP 5" in row["delivery"]["last_error"] and "secret" not in row

    wait_until(
        lambda: flaky.count() >= 3,
        timeout=30,
        what="3 tries",
        context=lambda: f"got {flaky.count()}",
    )
    payloads = [r.verify(secret) for r in flaky.received]
    [event] = _events_of(service.database_url, batch_id)
    assert (
        payloads
        == [
            {
                "object": "event",
                "id": event.id,
                "type": "batch.completed",
                "created_at": int(event.created_at.timestamp()),
                "data": {"id": batch_id},
            }
        ]
        * 3
    )
    assert {r.headers["webhook-id"] for r in flaky.received} == {event.id}
    stamps = [int(r.headers["webhook-timestamp"]) for r in flaky.received]
    assert stamps == sorted(stamps) and stamps[-1] > stamps[0]  # each try is signed anew
    with pytest.raises(WebhookVerificationError):
        flaky.received[0].verify("whsec_" + "QUJD" * 8)  # another secret does not verify

    def delivered() -> Any:
        [row] = api.get("/v1/webhooks").json()["data"]
        return row if row["delivery"]["last_status_code"] == 200 else None

    status = wait_until(delivered, timeout=30, what="the delivery to show")["delivery"]
    assert status["pending"] == 0 and status["failed"] == 0 and status["last_error"] is None
    assert status["next_attempt_at"] is None and status["last_success_at"] is not None
    [delivery] = _deliveries(service.database_url, event.id)
    assert (delivery.status, delivery.attempts) == ("delivered", 3)
    assert flaky.count() == 3  # nothing more once delivered


def test_endpoints_get_only_their_events_and_tenants_stay_apart(
    service: Service, receiver: Callable[..., Receiver]
) -> None:
    alice, bob = service.tenant(), service.tenant()
    cancels, everything = receiver(), receiver()
    mine = _register(alice, cancels.url, events=["batch.cancelled"])
    theirs = _register(bob, everything.url)

    done = _batch(alice)
    _ended(alice, done)
    slow = [
        {
            "custom_id": "slow",
            "messages": [{"role": "user", "content": "long [[emulator delay_ms=200 chunks=50]]"}],
        }
    ]
    cancelled = alice.post("/v1/batches", json={"requests": slow}).json()["id"]
    alice.post(f"/v1/batches/{cancelled}/cancel").raise_for_status()
    assert _ended(alice, cancelled)["status"] == "cancelled"

    wait_until(lambda: cancels.count() == 1, timeout=30, what="the cancelled event")
    payload = cancels.received[0].verify(str(mine["secret"]))
    assert (payload["type"], payload["data"]) == ("batch.cancelled", {"id": cancelled})
    assert _events_of(service.database_url, done) == []  # nobody wanted it: nothing owed
    # Bob's endpoint hears nothing of Alice's batches, and neither sees the other's endpoint.
    assert everything.count() == 0
    assert [e["id"] for e in bob.get("/v1/webhooks").json()["data"]] == [theirs["id"]]
    assert bob.get(f"/v1/webhooks/{mine['id']}").status_code == 404
    assert bob.delete(f"/v1/webhooks/{mine['id']}").status_code == 404
    gone = alice.delete(f"/v1/webhooks/{mine['id']}")
    assert gone.json() == {"id": mine["id"], "object": "webhook_endpoint", "deleted": True}
    assert alice.get("/v1/webhooks").json()["data"] == []


def test_the_event_survives_the_dispatcher_killed_during_its_delivery(
    service: Service, receiver: Callable[..., Receiver]
) -> None:
    api = service.tenant()
    stuck = receiver(HANG)
    secret = str(_register(api, stuck.url)["secret"])
    batch_id = _batch(api)
    # The batch has ended and its event is in flight: the receiver holds the first try.
    wait_until(lambda: stuck.count() == 1, timeout=30, what="the first try")
    assert _ended(api, batch_id)["status"] == "completed"
    service.stack.kill_dispatcher()
    service.stack.kill_worker()
    stuck.release()
    service.stack.start_dispatcher()
    service.stack.start_worker()

    wait_until(lambda: stuck.count() >= 2, timeout=60, what="the try after the restart")
    [event] = _events_of(service.database_url, batch_id)
    ids = {r.headers["webhook-id"] for r in stuck.received}
    assert ids == {event.id}  # at least once, always under the one event id
    assert {r.verify(secret)["id"] for r in stuck.received} == {event.id}
    wait_until(
        lambda: _deliveries(service.database_url, event.id)[0].status == "delivered",
        30,
        "the delivery to be recorded",
    )


def test_the_command_line_adds_lists_and_removes_endpoints(
    service: Service, receiver: Callable[..., Receiver]
) -> None:
    api = service.tenant()
    env = {
        **service.api.env,
        "AIVBATCH_API_URL": service.api.url,
        "AIVBATCH_API_KEY": str(api.headers["authorization"]).removeprefix("Bearer "),
    }

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [AIVBATCH, "webhooks", *args], env=env, capture_output=True, text=True, timeout=60
        )

    target = receiver()
    added = cli("add", target.url, "--event", "batch.expired", "--description", "ops")
    assert added.returncode == 0, added.stderr
    secret = added.stdout.strip()
    assert secret.startswith("whsec_") and "shown only now" in added.stderr
    [row] = api.get("/v1/webhooks").json()["data"]
    assert (row["url"], row["events"], row["description"]) == (
        target.url,
        ["batch.expired"],
        "ops",
    )
    listed = cli("list")
    assert listed.returncode == 0 and row["id"] in listed.stdout and "expired" in listed.stdout
    removed = cli("remove", row["id"])
    assert removed.returncode == 0 and api.get("/v1/webhooks").json()["data"] == []


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_delivery_checks_the_address_again_after_resolving_it(
    receiver: Callable[..., Receiver], host: str
) -> None:
    target = receiver()
    url = target.url.replace("127.0.0.1", host)
    now = utcnow()
    due = Due(1, 1, "evt_x", "batch.completed", now, "batch_x", "wh_x", url, "whsec_" + "A" * 44)

    async def attempt(allow: bool) -> tuple[int | None, str | None]:
        sender = WebhookSender(
            Settings(webhook_allow_private=allow, webhook_timeout=2),
            Database.from_url("sqlite://"),
        )
        async with httpx.AsyncClient() as client:
            return await sender.send(client, due)

    status, error = asyncio.run(attempt(allow=False))
    assert status is None and error is not None
    assert error.startswith(f"refused: {host} is a loopback address")
    assert target.count() == 0  # refused before any connection
    assert asyncio.run(attempt(allow=True)) == (200, None)
    assert target.count() == 1 and target.received[0].headers["host"].startswith(host)
