"""Limits and bad input: each answered before anything is written, with a 4xx naming the
limit or the lines; afterwards the tenant has no batch, no file and no webhook endpoint."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.support.api import ApiServer, Tenants

MAX_BODY = 4096
MAX_REQUESTS = 5
MAX_REQUEST_BYTES = 400


@pytest.fixture(scope="module")
def limited_api(module_api: Callable[..., ApiServer]) -> ApiServer:
    return module_api(
        MAX_BODY_BYTES=str(MAX_BODY),
        MAX_REQUESTS_PER_BATCH=str(MAX_REQUESTS),
        MAX_REQUEST_BYTES=str(MAX_REQUEST_BYTES),
    )


@pytest.fixture
def api(limited_api: ApiServer, tenants: Tenants) -> Iterator[httpx.Client]:
    client = limited_api.client(tenants.key())
    yield client
    # Whatever was refused left nothing behind.
    assert client.get("/v1/batches").json()["data"] == []
    assert client.get("/v1/files").json()["data"] == []
    assert client.get("/v1/webhooks").json()["data"] == []


def _native(custom_id: str, text: str = "hi") -> dict[str, object]:
    return {"custom_id": custom_id, "messages": [{"role": "user", "content": text}]}


def _openai_line(custom_id: str, text: str = "hi") -> str:
    body = {"model": "gpt-3.5-turbo", "messages": [{"role": "user", "content": text}]}
    return json.dumps(
        {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body}
    )


def _upload(api: httpx.Client, content: bytes, purpose: str = "batch") -> httpx.Response:
    return api.post("/v1/files", data={"purpose": purpose}, files={"file": ("in.jsonl", content)})


def _assert_body_limit(r: httpx.Response) -> None:
    assert r.status_code == 413, r.text
    error = r.json()["error"]
    assert error["code"] == "body_too_large"
    assert "AIVBATCH_MAX_BODY_BYTES" in error["message"] and str(MAX_BODY) in error["message"]


def test_a_body_over_the_limit_is_refused_by_its_length(api: httpx.Client) -> None:
    requests = [_native(f"r{i}", "x" * 300) for i in range(15)]
    body = json.dumps({"requests": requests}).encode()
    assert len(body) > MAX_BODY
    _assert_body_limit(
        api.post("/v1/batches", content=body, headers={"content-type": "application/json"})
    )


def test_a_chunked_body_over_the_limit_is_refused_while_it_streams(api: httpx.Client) -> None:
    # Far more than the socket buffers between client and server hold: a server that read
    # the whole body before refusing it would have taken all of it.
    piece = (json.dumps(_native("r", "y" * 60_000)) + ",").encode()
    pieces = 1000
    sent = 0

    def chunks() -> Iterator[bytes]:
        nonlocal sent
        yield b'{"requests": ['
        for _ in range(pieces):
            sent += len(piece)
            yield piece
        yield b"]}"

    r = api.post("/v1/batches", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in r.request.headers
    _assert_body_limit(r)
    assert sent < pieces * len(piece) // 4, f"{sent} of {pieces * len(piece)} bytes were taken"


def test_a_chunked_upload_over_the_limit_is_refused(api: httpx.Client) -> None:
    lines = "\n".join(_openai_line(f"r{i}", "z" * 200) for i in range(40)).encode()

    def chunks() -> Iterator[bytes]:
        boundary = b"--limit-boundary"
        yield boundary + b'\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        yield boundary + b'\r\nContent-Disposition: form-data; name="file"; filename="a.jsonl"\r\n'
        yield b"Content-Type: application/jsonl\r\n\r\n"
        for start in range(0, len(lines), 512):
            yield lines[start : start + 512]
        yield b"\r\n" + boundary + b"--\r\n"

    r = api.post(
        "/v1/files",
        content=chunks(),
        headers={"content-type": "multipart/form-data; boundary=limit-boundary"},
    )
    _assert_body_limit(r)


def test_too_many_requests_names_the_limit(api: httpx.Client) -> None:
    r = api.post("/v1/batches", json={"requests": [_native(f"r{i}") for i in range(6)]})
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["code"] == "too_many_requests_in_batch"
    assert "AIVBATCH_MAX_REQUESTS_PER_BATCH" in error["message"] and "6" in error["message"]
    upload = _upload(api, "\n".join(_openai_line(f"r{i}") for i in range(6)).encode())
    assert upload.status_code == 422
    assert upload.json()["error"]["code"] == "too_many_requests_in_batch"


def test_a_request_over_the_size_limit_names_its_line(api: httpx.Client) -> None:
    r = api.post("/v1/batches", json={"requests": [_native("ok"), _native("big", "b" * 500)]})
    assert r.status_code == 413
    error = r.json()["error"]
    assert error["code"] == "request_too_large" and error["param"] == "request 2"
    assert "AIVBATCH_MAX_REQUEST_BYTES" in error["lines"][0]["message"]
    content = "\n".join([_openai_line("ok"), _openai_line("big", "b" * 500)]).encode()
    upload = _upload(api, content)
    assert upload.status_code == 413 and upload.json()["error"]["param"] == "line 2"


def test_malformed_jsonl_names_every_bad_line(api: httpx.Client) -> None:
    content = "\n".join(
        [
            _openai_line("a"),
            "{not json",
            "",  # blank lines are skipped but still counted
            json.dumps(
                {"custom_id": "c", "method": "GET", "url": "/v1/chat/completions", "body": {}}
            ),
            json.dumps({"custom_id": "d", "url": "/v1/images", "body": {"messages": []}}),
            json.dumps([1, 2]),
        ]
    ).encode()
    r = _upload(api, content)
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "invalid_jsonl"
    assert [line["line"] for line in error["lines"]] == [2, 4, 5, 6]
    assert "not valid JSON" in error["lines"][0]["message"]
    assert "method must be POST" in error["lines"][1]["message"]
    assert "url must be one of /v1/chat/completions" in error["lines"][2]["message"]
    assert error["message"].startswith("line 2: not valid JSON")


def test_invalid_utf8_names_its_line(api: httpx.Client) -> None:
    content = _openai_line("a").encode() + b"\n" + _openai_line("b").encode()[:-3] + b'\xff"}}'
    r = _upload(api, content)
    assert r.status_code == 400 and r.json()["error"]["lines"][0]["line"] == 2


def test_duplicate_custom_ids_in_a_file_are_422(api: httpx.Client) -> None:
    content = "\n".join([_openai_line("a"), _openai_line("b"), _openai_line("a")]).encode()
    r = _upload(api, content)
    assert r.status_code == 422
    assert r.json()["error"]["lines"] == [
        {"line": 3, "message": "custom_id 'a' is already used by line 1"}
    ]


@pytest.mark.parametrize(("content", "purpose"), [(b"", "batch"), (b"x", "fine-tune")])
def test_an_empty_file_or_another_purpose_is_400(
    api: httpx.Client, content: bytes, purpose: str
) -> None:
    r = _upload(api, content or b"\n\n", purpose)
    assert r.status_code == 400


def test_a_file_of_another_tenant_or_none_cannot_make_a_batch(api: httpx.Client) -> None:
    r = api.post("/v1/batches", json={"input_file_id": "file-nope", "completion_window": "24h"})
    assert r.status_code == 404


def test_webhook_urls_on_private_addresses_and_bad_webhook_input_are_400(
    api: httpx.Client,
) -> None:
    # AIVBATCH_WEBHOOK_ALLOW_PRIVATE is off, as by default.
    refused = {
        "http://127.0.0.1:9/hook": "loopback",
        "http://localhost:9/hook": "loopback",  # a name is resolved, then checked
        "http://[::1]/hook": "loopback",
        "http://[::ffff:127.0.0.1]/hook": "loopback",
        "http://10.0.0.8/hook": "private",
        "http://192.168.1.1/hook": "private",
        "http://169.254.169.254/latest/meta-data": "link-local",
        "http://[fe80::1]/hook": "link-local",
        "ftp://8.8.8.8/hook": "only http:// and https://",
        "http:///nohost": "names no usable host",
        "http://[::1/hook": "not a URL",
        "http://8.8.8.8:99999/": "port",
    }
    for url, why in refused.items():
        r = api.post("/v1/webhooks", json={"url": url})
        assert r.status_code == 400, (url, r.text)
        assert why in r.json()["error"]["message"], (url, r.text)
    bad = [
        {},
        {"url": 5},
        {"url": "http://8.8.8.8/", "events": ["batch.exploded"]},
        {"url": "http://8.8.8.8/", "events": []},
        {"url": "http://8.8.8.8/", "secret": "mine"},
        {"url": "http://8.8.8.8/" + "x" * 3000},
    ]
    for body in bad:
        r = api.post("/v1/webhooks", json=body)
        assert r.status_code == 400, (body, r.text)
    assert api.get("/v1/webhooks").json()["data"] == []  # nothing was kept
    assert api.delete("/v1/webhooks/wh_nope").status_code == 404
    r = api.post("/v1/webhooks", json={"url": "ftp://8.8.8.8/"}, headers={"authorization": ""})
    assert r.status_code == 401
