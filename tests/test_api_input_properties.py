"""Property-based: whatever bytes reach the create and upload routes, the answer is never a
5xx; a refusal writes nothing, and what is accepted reads back as it was sent.

Requests are drawn mostly well-formed, with every field sometimes replaced by something
hostile (lone surrogates, NUL and other control characters, huge or odd numbers, deep or
wrong types), and files sometimes hold raw bytes that are not UTF-8. Bounded, and
derandomized so that CI runs the same cases every time.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from tests.support.api import ApiServer, Tenants

EXAMPLES = 30
PROPERTY_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Text with the characters that have broken things before (NUL, controls, "/"), and any
# other; "anything" adds lone surrogates (json.dumps sends them as escapes).
odd = st.sampled_from(["\x00", "\n", "\x7f", "\x85", "/", "é", "😀", " "])
text = st.text(st.one_of(odd, st.characters()), max_size=12)
anything = st.text(
    st.one_of(st.sampled_from(["\ud800", "\udc00"]), st.characters(codec=None)), max_size=12
)
hostile = st.one_of(
    anything,
    st.integers(min_value=-(2**80), max_value=2**80),
    st.floats(allow_nan=True, allow_infinity=True),
    st.booleans(),
    st.none(),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


def _maybe(good: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly a good value, sometimes a hostile one."""
    return st.one_of(good, good, good, good, good, hostile)


message = st.fixed_dictionaries(
    {"role": _maybe(st.sampled_from(["user", "system", "assistant"])), "content": _maybe(text)}
)


@st.composite
def request(draw: st.DrawFn, n: int) -> Any:
    obj = {
        "custom_id": draw(_maybe(st.just(f"r{n}") | text)),
        "messages": draw(_maybe(st.lists(message, min_size=1, max_size=2))),
    }
    for name, good in (
        ("model", st.just("gpt-4") | text),
        ("temperature", st.floats(0, 2) | st.integers(0, 2)),
        ("system_message", text),
    ):
        if draw(st.booleans()):
            obj[name] = draw(_maybe(good))
    if draw(st.integers(0, 9)) == 0:
        return {"custom_id": obj["custom_id"], "method": "POST", "body": obj}
    return obj


requests = st.integers(1, 3).flatmap(lambda k: st.tuples(*(request(i) for i in range(k))))
batch_fields = st.fixed_dictionaries(
    {},
    optional={
        "model": _maybe(st.just("gpt-4")),
        "temperature": _maybe(st.just(0.5)),
        "system_message": _maybe(text),
        "metadata": _maybe(st.dictionaries(text, text, max_size=2)),
        "completion_window": _maybe(st.sampled_from(["24h", "30m", "7d"])),
    },
)
raw_line = st.one_of(st.binary(max_size=40), st.just(b"[" * 5000 + b"]" * 5000))


@pytest.fixture(scope="module")
def api(module_api: Callable[..., ApiServer]) -> ApiServer:
    return module_api(
        KEY_REQUESTS_PER_SECOND="100000",
        TENANT_MAX_OPEN_BATCHES="100000",
        TENANT_MAX_QUEUED_REQUESTS="100000000",
    )


@pytest.fixture(scope="module")
def client(api: ApiServer, shared_database_url: str) -> httpx.Client:
    return api.client(Tenants(shared_database_url).key())


def _written(client: httpx.Client) -> tuple[int, int]:
    return (
        len(client.get("/v1/batches", params={"limit": 100}).json()["data"]),
        len(client.get("/v1/files", params={"limit": 10_000}).json()["data"]),
    )


def _native(**fields: Any) -> dict[str, Any]:
    return {"custom_id": "r0", "messages": [{"role": "user", "content": "x"}], **fields}


@PROPERTY_SETTINGS
@given(batch=requests, fields=batch_fields)
# What broke before, always tried: text a database cannot keep, and a window past a year.
@example(batch=(_native(custom_id="\udc00"),), fields={})
@example(batch=(_native(messages=[{"role": "user", "content": "\ud800"}]),), fields={})
@example(batch=(_native(model="a\x00b"),), fields={"system_message": "a\x00b"})
@example(batch=(_native(),), fields={"completion_window": "99999999999999999999d"})
def test_create_never_fails_with_a_server_error(
    client: httpx.Client, batch: tuple[Any, ...], fields: dict[str, Any]
) -> None:
    before = _written(client)
    body = json.dumps({"requests": list(batch), **fields}).encode()  # surrogates as escapes
    r = client.post("/v1/batches", content=body, headers={"content-type": "application/json"})
    assert r.status_code < 500, r.text
    if r.status_code != 200:
        assert r.json()["error"]["message"] and _written(client) == before
        return
    created = r.json()
    assert created["request_counts"]["total"] == len(batch)
    first = batch[0]["custom_id"]
    job = client.get(f"/v1/batches/{created['id']}/jobs/{quote(first, safe='/')}")
    assert job.status_code == 200 and job.json()["custom_id"] == first


@PROPERTY_SETTINGS
@given(
    lines=st.lists(
        st.one_of(
            requests.map(lambda rs: json.dumps(rs[0]).encode()),
            raw_line,
        ),
        min_size=1,
        max_size=4,
    )
)
@example(lines=[rb'{"custom_id": "e\ud800", "messages": [{"role": "user", "content": "x"}]}'])
@example(lines=[b'{"custom_id": "e", "messages": [{"role": "user", "content": "\xed\xa0\x80"}]}'])
def test_upload_never_fails_with_a_server_error(client: httpx.Client, lines: list[bytes]) -> None:
    before = _written(client)
    content = b"\n".join(lines)
    files = {"file": ("in\x00.jsonl", content)}
    r = client.post("/v1/files", data={"purpose": "batch"}, files=files)
    assert r.status_code < 500, r.text
    if r.status_code != 200:
        assert r.json()["error"]["message"] and _written(client) == before
        return
    assert client.get(f"/v1/files/{r.json()['id']}/content").content == content
