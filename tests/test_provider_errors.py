"""Every error kind of the Aivvm provider, on both streaming paths, from the emulator's faults.

Each kind is asserted exactly (class, status, message, what it carries), the upstream key
never shows in an error, and the provider makes exactly one request (no hidden retries).
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from models.settings import get_settings
from tests.support.emulator import EmulatorServer, marker
from tests.support.provider import PATHS, closed_port, run
from worker.providers.aivvm import Aivvm
from worker.providers.errors import (
    NotAnAnswer,
    RateLimited,
    StreamInterrupted,
    StreamStalled,
    UpstreamError,
    UpstreamRefused,
    UpstreamUnavailable,
)

pytestmark = pytest.mark.usefixtures("clean_settings")

# Distinctive, so finding it anywhere in an error is no coincidence.
SECRET = "sk-aivbatch-UNMISTAKABLE-key-5c1f9e7a"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    """One quick emulator for the module (its default stall lasts 300 s)."""
    log: Path = tmp_path_factory.mktemp("emulator") / "emulator.log"
    with EmulatorServer({"ttfb_ms": 0, "delay_ms": 5}, log=log) as running:
        yield running


@pytest.fixture
def upstream(server: EmulatorServer) -> EmulatorServer:
    server.reset()
    return server


def collect(path: str, content: str, **kwargs: Any) -> str:
    """The whole answer to ``content`` through the sync or the async path."""
    messages = [{"role": "user", "content": content}]
    kwargs = {"model": "gpt-4", "messages": messages, "key": SECRET, **kwargs}
    if path == "sync":
        return "".join(Aivvm.create_completion(stream=True, **kwargs))

    async def gather() -> str:
        return "".join([chunk async for chunk in Aivvm.create_async_generator(**kwargs)])

    return run(gather())


def assert_no_secret(exc: BaseException) -> None:
    shown = "".join(traceback.format_exception(exc)) + repr(exc) + repr(exc.args)
    assert SECRET not in shown


def assert_one_request(upstream: EmulatorServer, fault: str) -> None:
    stats = upstream.stats()
    assert (stats["started"], stats["faulted"][fault]) == (1, 1)


WHOLE_FAULTS = [
    ("429", RateLimited, 429, "429: Rate limit reached (emulator fault 429); retry after 1 s."),
    (
        "500",
        UpstreamUnavailable,
        500,
        "500: The server had an error processing your request (emulator fault 500).",
    ),
    ("403", UpstreamRefused, 403, "403: Just a moment..."),
    ("html", NotAnAnswer, 200, "the upstream answered 200 with an HTML page: Attention Required!"),
]


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("fault", "kind", "status", "message"), WHOLE_FAULTS)
def test_whole_response_faults(
    upstream: EmulatorServer,
    path: str,
    fault: str,
    kind: type[UpstreamError],
    status: int,
    message: str,
) -> None:
    with pytest.raises(UpstreamError) as caught:
        collect(path, "Hello " + marker(fault=fault), base_url=upstream.url)
    exc = caught.value
    assert type(exc) is kind
    assert (exc.status_code, str(exc), exc.message) == (status, message, message)
    assert exc.retryable is (kind is not UpstreamRefused)
    assert_no_secret(exc)
    assert_one_request(upstream, fault)


@pytest.mark.parametrize("path", PATHS)
def test_rate_limit_carries_retry_after(upstream: EmulatorServer, path: str) -> None:
    with pytest.raises(RateLimited) as caught:
        collect(path, "Busy? " + marker(fault="429", retry_after=7), base_url=upstream.url)
    assert caught.value.retry_after == 7.0
    assert caught.value.code == "rate_limited"
    with pytest.raises(RateLimited) as caught:
        collect(path, "Now? " + marker(fault="429", retry_after=0), base_url=upstream.url)
    assert caught.value.retry_after == 0.0


@pytest.mark.parametrize("path", PATHS)
def test_refusal_carries_the_upstreams_json_message(upstream: EmulatorServer, path: str) -> None:
    with pytest.raises(UpstreamRefused) as caught:
        collect(path, "Hi " + marker(fault="418"), base_url=upstream.url)
    assert caught.value.status_code == 400
    assert str(caught.value) == (
        "400: emulator marker: fault must be one of 429, 500, 503, 400, 401, 403, html, reset, "
        "stall, error_event, not '418'"
    )
    assert caught.value.retryable is False
    assert_no_secret(caught.value)


@pytest.mark.parametrize("path", PATHS)
def test_reset_mid_stream_carries_the_text_that_arrived(
    upstream: EmulatorServer, path: str
) -> None:
    content = "Tell me about rivers " + marker(
        fault="reset", times=1, after=4, chunks=10, chunk_size=30
    )
    with pytest.raises(StreamInterrupted) as caught:
        collect(path, content, base_url=upstream.url)
    exc = caught.value
    assert type(exc) is StreamInterrupted
    assert exc.status_code == 200 and exc.retryable
    assert str(exc).startswith("the stream broke off: RemoteProtocolError: "), str(exc)
    assert_no_secret(exc)
    # The same request again is not faulted (times=1): the whole answer, of which the
    # interrupted one holds the first 4 of 10 chunks.
    whole = collect(path, content, base_url=upstream.url)
    assert exc.partial_text == whole[: exc.received_chars]
    assert 3 * len(whole) // 10 < exc.received_chars < 5 * len(whole) // 10
    assert upstream.stats()["faulted"]["reset"] == 1


@pytest.mark.parametrize("path", PATHS)
def test_stall_raises_within_the_stall_timeout(upstream: EmulatorServer, path: str) -> None:
    content = "Wait for it " + marker(fault="stall", times=1, after=3, chunks=10, chunk_size=30)
    started = time.monotonic()
    with pytest.raises(StreamStalled) as caught:
        collect(path, content, base_url=upstream.url, stall_timeout=0.5)
    elapsed = time.monotonic() - started
    # Behaviour bounds, loosely: not before the timeout, nowhere near the 300 s stall.
    assert 0.5 <= elapsed < 10, elapsed
    exc = caught.value
    assert str(exc) == "no data from the upstream for 0.5 s"
    assert exc.status_code == 200 and exc.code == "stream_stalled"
    assert_no_secret(exc)
    whole = collect(path, content, base_url=upstream.url)
    assert exc.partial_text == whole[: exc.received_chars]
    assert 2 * len(whole) // 10 < exc.received_chars < 4 * len(whole) // 10


@pytest.mark.parametrize("path", PATHS)
def test_silence_before_the_first_byte_is_a_stall_with_no_text(
    upstream: EmulatorServer, path: str
) -> None:
    started = time.monotonic()
    with pytest.raises(StreamStalled) as caught:
        collect(path, "Slow " + marker(ttfb_ms=5000), base_url=upstream.url, stall_timeout=0.5)
    assert time.monotonic() - started < 4
    assert (caught.value.partial_text, caught.value.received_chars) == ("", 0)


@pytest.mark.parametrize("path", PATHS)
def test_closed_port_is_unavailable(path: str) -> None:
    port = closed_port()
    base_url = f"http://127.0.0.1:{port}"
    with pytest.raises(UpstreamUnavailable) as caught:
        collect(path, "Anyone there?", base_url=base_url)
    exc = caught.value
    assert str(exc).startswith(f"could not reach {base_url} (ConnectError"), str(exc)
    assert exc.status_code is None and exc.retryable
    assert_no_secret(exc)
    listing = Aivvm.list_models if path == "sync" else lambda u: run(Aivvm.alist_models(u))
    with pytest.raises(UpstreamUnavailable) as caught:
        listing(base_url)
    assert str(caught.value).startswith(f"could not reach {base_url} (ConnectError")


HTML_PAGE = "the upstream answered 200 with an HTML page: "
# (status, how the body is sent, its template, the error, its message): {key} is the key sent.
ECHOES = [
    (401, "json", "Bad API key: {key}.", UpstreamRefused, "401: Bad API key: ***."),
    (429, "text", "Too many requests for {key}", RateLimited, "429: Too many requests for ***"),
    (503, "text", "key {key} is over quota", UpstreamUnavailable, "503: key *** is over quota"),
    (200, "html", "<html><title>No {key}</title>", NotAnAnswer, HTML_PAGE + "No ***"),
]


def echoing(status: int, how: str, template: str) -> httpx.MockTransport:
    """An upstream that quotes the key it was sent back in its error, as some do."""

    def answer(request: httpx.Request) -> httpx.Response:
        text = template.format(key=json.loads(request.content)["key"])
        if how == "json":
            return httpx.Response(status, json={"error": {"message": text}})
        if how == "html":
            return httpx.Response(status, html=text)
        return httpx.Response(status, text=text)

    return httpx.MockTransport(answer)


def raised(path: str, transport: httpx.MockTransport, **kwargs: Any) -> BaseException:
    """The error a completion through ``transport`` ends with, on the sync or async path."""
    kwargs |= {"model": "gpt-4", "messages": [{"role": "user", "content": "Hi"}]}

    async def gather() -> list[str]:
        async with httpx.AsyncClient(transport=transport) as client:
            return [chunk async for chunk in Aivvm.create_async_generator(client=client, **kwargs)]

    with pytest.raises(UpstreamError) as caught:
        if path == "sync":
            with httpx.Client(transport=transport) as client:
                list(Aivvm.create_completion(stream=True, client=client, **kwargs))
        else:
            run(gather())
    return caught.value


@pytest.mark.parametrize("from_env", [False, True], ids=["kwarg", "env"])
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize(("status", "how", "template", "kind", "message"), ECHOES)
def test_key_quoted_back_by_the_upstream_is_masked(
    monkeypatch: pytest.MonkeyPatch,
    path: str,
    from_env: bool,
    status: int,
    how: str,
    template: str,
    kind: type[UpstreamError],
    message: str,
) -> None:
    if from_env:
        monkeypatch.setenv("AIVBATCH_AIVVM_KEY", SECRET)
        get_settings.cache_clear()
    exc = raised(path, echoing(status, how, template), **({} if from_env else {"key": SECRET}))
    assert type(exc) is kind
    assert str(exc) == message
    assert_no_secret(exc)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("how", ["json", "text", "html"])
def test_key_across_the_message_clip_leaves_no_part_of_it(path: str, how: str) -> None:
    # Messages are clipped to 500 characters; the key here starts 10 characters before the cut.
    template = "x" * 486 + " {key} and more"
    if how == "html":
        template = f"<html><title>{template}</title></html>"
    exc = raised(path, echoing(200 if how == "html" else 401, how, template), key=SECRET)
    assert str(exc).endswith("x" * 20 + " *** and more")
    assert SECRET[:8] not in str(exc)
