"""Bearer keys and tenants: no key, a bad key or a revoked key is 401; another tenant's
object answers 404 exactly like one that does not exist, on every route."""

from __future__ import annotations

import io
import json
from collections.abc import Callable

import httpx
import pytest

from models.apikeys import list_keys, revoke_key
from models.db import Database
from models.types import utcnow
from tests.support.api import ApiServer, Tenants

LINE = {
    "custom_id": "a",
    "method": "POST",
    "url": "/v1/chat/completions",
    "body": {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": "hi"}]},
}


def _owned(client: httpx.Client) -> tuple[str, str]:
    """A batch and a file of the client's tenant."""
    batch = client.post(
        "/v1/batches",
        json={"requests": [{"custom_id": "a", "messages": LINE["body"]["messages"]}]},  # type: ignore[index]
    ).json()["id"]
    upload = client.post(
        "/v1/files",
        data={"purpose": "batch"},
        files={"file": ("in.jsonl", io.BytesIO(json.dumps(LINE).encode()))},
    )
    assert upload.status_code == 200, upload.text
    return batch, upload.json()["id"]


ROUTES: list[tuple[str, str, Callable[[str, str], str]]] = [
    ("GET", "batch", lambda b, _f: f"/v1/batches/{b}"),
    ("POST", "batch", lambda b, _f: f"/v1/batches/{b}/cancel"),
    ("GET", "batch", lambda b, _f: f"/v1/batches/{b}/results"),
    ("GET", "batch", lambda b, _f: f"/v1/batches/{b}/jobs/a"),
    ("GET", "batch", lambda b, _f: f"/v1/batches/{b}/events"),
    ("GET", "batch", lambda b, _f: f"/v1/batches/{b}/jobs/a/events"),
    ("GET", "file", lambda _b, f: f"/v1/files/{f}"),
    ("GET", "file", lambda _b, f: f"/v1/files/{f}/content"),
    ("DELETE", "file", lambda _b, f: f"/v1/files/{f}"),
]


@pytest.mark.parametrize(("method", "kind", "path"), ROUTES)
def test_another_tenants_object_is_not_found_like_a_missing_one(
    shared_api: ApiServer, tenants: Tenants, method: str, kind: str, path: Callable[[str, str], str]
) -> None:
    owner = shared_api.client(tenants.key())
    other = shared_api.client(tenants.key())
    batch, file_id = _owned(owner)
    theirs = other.request(method, path(batch, file_id))
    missing_id = ("batch_" + "0" * 32) if kind == "batch" else ("file-" + "0" * 32)
    real_id = batch if kind == "batch" else file_id
    missing = other.request(method, path(missing_id, missing_id))
    assert theirs.status_code == missing.status_code == 404
    assert theirs.text.replace(real_id, "ID") == missing.text.replace(missing_id, "ID")
    # The owner still sees it, untouched.
    assert owner.get(f"/v1/batches/{batch}").json()["status"] == "in_progress"
    assert owner.get(f"/v1/files/{file_id}").status_code == 200


def test_lists_and_batch_creation_see_only_the_callers_objects(
    shared_api: ApiServer, tenants: Tenants
) -> None:
    owner = shared_api.client(tenants.key())
    other = shared_api.client(tenants.key())
    batch, file_id = _owned(owner)
    assert [b["id"] for b in owner.get("/v1/batches").json()["data"]] == [batch]
    assert other.get("/v1/batches").json()["data"] == []
    assert other.get("/v1/files").json()["data"] == []
    r = other.post("/v1/batches", json={"input_file_id": file_id, "completion_window": "24h"})
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    assert other.get("/v1/batches").json()["data"] == []


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer aivb-not-a-key"}, {"Authorization": "Basic dXNlcjpwYXNz"}],
)
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/v1/batches"),
        ("POST", "/v1/batches"),
        ("GET", "/v1/batches/batch_x"),
        ("GET", "/v1/batches/batch_x/events"),
        ("GET", "/v1/files"),
        ("POST", "/v1/files"),
    ],
)
def test_calls_without_a_valid_key_are_401(
    shared_api: ApiServer, headers: dict[str, str], method: str, path: str
) -> None:
    r = httpx.request(method, shared_api.url + path, headers=headers, json={"requests": []})
    assert r.status_code == 401
    assert r.headers["www-authenticate"] == "Bearer"
    assert r.json()["error"]["code"] == "invalid_api_key"


def test_a_revoked_key_stops_working(
    shared_api: ApiServer, tenants: Tenants, shared_database_url: str
) -> None:
    key = tenants.key("revokable")
    client = shared_api.client(key)
    assert client.get("/v1/batches").status_code == 200
    db = Database.from_url(shared_database_url)
    try:
        with db.write() as session:
            row = next(k for k in list_keys(session, "revokable"))
            assert row.last_used_at is not None  # the first call recorded its use
            revoke_key(session, row.id, now=utcnow())
    finally:
        db.dispose()
    r = client.get("/v1/batches")
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics", "/docs", "/openapi.json"])
def test_service_routes_need_no_key(shared_api: ApiServer, path: str) -> None:
    assert httpx.get(shared_api.url + path).status_code == 200


def test_auth_off_makes_everyone_the_default_tenant(
    module_api: Callable[..., ApiServer],
) -> None:
    open_api = module_api(AUTH_ENABLED="false")
    anyone = httpx.Client(base_url=open_api.url)
    batch = anyone.post(
        "/v1/batches",
        json={"requests": [{"custom_id": "a", "messages": LINE["body"]["messages"]}]},  # type: ignore[index]
    )
    assert batch.status_code == 200, batch.text
    with_junk_key = httpx.get(
        f"{open_api.url}/v1/batches/{batch.json()['id']}",
        headers={"Authorization": "Bearer whatever"},
    )
    assert with_junk_key.status_code == 200
    anyone.close()
