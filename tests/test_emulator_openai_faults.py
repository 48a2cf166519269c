"""The emulator's OpenAI protocol misbehaving on demand, its SSE framings, auth, introspection."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pydantic
import pytest
from httpx_sse import connect_sse
from openai.types.chat import ChatCompletionChunk
from openai.types.responses import Response, ResponseStreamEvent

from emulator.__main__ import parse_settings
from tests.support.emulator import EmulatorServer, marker

MODEL = "gpt-4o-mini"
EVENT = pydantic.TypeAdapter(ResponseStreamEvent)
VOLATILE = {"id", "item_id", "created", "created_at"}


def chat(content: str = "Tell me about rivers", **fields: Any) -> dict[str, Any]:
    """A chat completions body."""
    return {"model": MODEL, "messages": [{"role": "user", "content": content}], **fields}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    """One quick emulator shared by this module's tests."""
    log = tmp_path_factory.mktemp("emulator") / "emulator.log"
    with EmulatorServer({"ttfb_ms": 0, "delay_ms": 1}, log=log) as running:
        yield running


@pytest.fixture(scope="module")
def http(server: EmulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.openai_url, timeout=10) as c:
        yield c


def events(http: httpx.Client, path: str, body: dict[str, Any]) -> list[tuple[str, str]]:
    """(event, data) of every event, read with httpx-sse."""
    with connect_sse(http, "POST", path, json=body) as source:
        assert source.response.status_code == 200, source.response.read()
        return [(e.event, e.data) for e in source.iter_sse()]


def normalized(value: Any) -> Any:
    """The value with per-call ids and timestamps blanked."""
    if isinstance(value, dict):
        return {k: None if k in VOLATILE else normalized(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalized(v) for v in value]
    return value


def parsed(pairs: list[tuple[str, str]]) -> list[tuple[str, Any]]:
    return [
        (name, data if data == "[DONE]" else normalized(json.loads(data))) for name, data in pairs
    ]


def raw_pieces(http: httpx.Client, path: str, body: dict[str, Any]) -> list[bytes]:
    with http.stream("POST", path, json=body) as response:
        assert response.status_code == 200
        return list(response.iter_raw())


@pytest.mark.parametrize("kind", ["429", "500", "503", "400", "401", "403", "html"])
def test_whole_answer_faults(http: httpx.Client, kind: str) -> None:
    response = http.post(
        "/chat/completions", json=chat(f"Fault {kind} " + marker(fault=kind, retry_after=2))
    )
    assert response.headers["x-aivbatch-emulator"] == "aivbatch"
    if kind in ("403", "html"):
        assert response.status_code == (403 if kind == "403" else 200)
        assert response.headers["content-type"].startswith("text/html") and "<html" in response.text
        return
    assert response.status_code == int(kind)
    error = response.json()["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    if kind == "429":
        assert response.headers["retry-after"] == "2"
        assert response.headers["retry-after-ms"] == "2000"
        assert error["code"] == "rate_limit_exceeded"
    if kind == "503":
        assert response.headers["retry-after"] == "2" and error["type"] == "server_error"
    if kind == "401":
        assert error["code"] == "invalid_api_key"


def test_openai_client_sees_rate_limit_then_answer(server: EmulatorServer) -> None:
    body = chat("Busy? " + marker(fault="429", times=1, retry_after=0))
    with openai.OpenAI(base_url=server.openai_url, api_key="k", max_retries=0) as client:
        with pytest.raises(openai.RateLimitError) as caught:
            client.chat.completions.create(**body)
        assert caught.value.response.headers["retry-after-ms"] == "0"
        assert client.chat.completions.create(**body).choices[0].message.content
        with pytest.raises(openai.InternalServerError):
            client.embeddings.create(model=MODEL, input="x " + marker(fault="500"))


def test_reset_drops_the_stream_midway(http: httpx.Client, server: EmulatorServer) -> None:
    before = server.stats()["faulted"]["reset"]
    received = b""
    with pytest.raises(httpx.RemoteProtocolError):
        with http.stream(
            "POST", "/chat/completions", json=chat("Cut " + marker(fault="reset"), stream=True)
        ) as r:
            assert r.status_code == 200
            for piece in r.iter_raw():
                received += piece
    assert received.count(b"data: ") >= 8 and b"[DONE]" not in received
    assert server.stats()["faulted"]["reset"] == before + 1


def test_stall_resumes_or_frees_the_stream_when_the_client_leaves(
    http: httpx.Client, server: EmulatorServer
) -> None:
    started = time.monotonic()
    pairs = events(
        http,
        "/chat/completions",
        chat("Pause " + marker(fault="stall", stall_seconds=0.3), stream=True),
    )
    assert time.monotonic() - started >= 0.3 and pairs[-1][1] == "[DONE]"
    before = server.stats()["disconnected"]
    with pytest.raises(httpx.ReadTimeout):
        with http.stream(
            "POST",
            "/chat/completions",
            json=chat("Wait " + marker(fault="stall", after=3), stream=True),
            timeout=httpx.Timeout(10, read=0.3),
        ) as r:
            for _ in r.iter_raw():
                pass
    stats = server.wait_for_stats(lambda s: s["disconnected"] > before and s["in_flight"] == 0)
    assert stats["disconnected"] == before + 1


def test_error_event_mid_stream(http: httpx.Client, server: EmulatorServer) -> None:
    pairs = events(
        http, "/chat/completions", chat("Oops " + marker(fault="error_event", after=4), stream=True)
    )
    assert pairs[-1] == ("message", "[DONE]")
    error = json.loads(pairs[-2][1])["error"]
    assert error["type"] == "server_error" and error["message"]
    chunks = [json.loads(d) for _, d in pairs[:-2]]
    assert chunks and all(ChatCompletionChunk.model_validate(c) for c in chunks)
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks)
    with openai.OpenAI(base_url=server.openai_url, api_key="k", max_retries=0) as client:
        stream = client.chat.completions.create(
            **chat("Oops again " + marker(fault="error_event"), stream=True)
        )
        with pytest.raises(openai.APIError, match="error_event"):
            for _ in stream:
                pass
        with pytest.raises(openai.InternalServerError):
            client.chat.completions.create(**chat("Oops whole " + marker(fault="error_event")))

    named = events(
        http,
        "/responses",
        {"model": MODEL, "input": "Oops " + marker(fault="error_event"), "stream": True},
    )
    values = [json.loads(d) for _, d in named]
    for number, ((name, _), value) in enumerate(zip(named, values, strict=True)):
        EVENT.validate_python(value)
        assert value["type"] == name and value["sequence_number"] == number
    assert [v["type"] for v in values[-2:]] == ["error", "response.failed"]
    failed = Response.model_validate(values[-1]["response"])
    assert failed.status == "failed" and failed.error and failed.error.code == "server_error"


def stream_body(path: str, extra: str = "") -> dict[str, Any]:
    """A streamed request in Cyrillic (so writes can cut characters) to each endpoint."""
    if path == "/chat/completions":
        return chat(
            "Привет! Как дела? " + extra,
            n=2,
            stream=True,
            logprobs=True,
            stream_options={"include_usage": True},
        )
    if path == "/completions":
        return {
            "model": MODEL,
            "prompt": "Расскажи сказку " + extra,
            "max_tokens": 40,
            "n": 2,
            "stream": True,
        }
    return {"model": MODEL, "input": "Расскажи о саде " + extra, "stream": True}


@pytest.mark.parametrize(
    "variation", ["crlf", "comments", "multiline", "split", "crlf,comments,multiline,split"]
)
def test_sse_variations_parse_to_the_same_events(http: httpx.Client, variation: str) -> None:
    kinds = set(variation.split(","))
    for path in ("/chat/completions", "/completions", "/responses"):
        plain = parsed(events(http, path, stream_body(path)))
        varied = parsed(events(http, path, stream_body(path, marker(sse=variation))))
        assert len(varied) == len(plain) > 20
        assert varied == plain, (path, variation)
    pieces = raw_pieces(
        http, "/chat/completions", stream_body("/chat/completions", marker(sse=variation))
    )
    data = b"".join(pieces)
    if "crlf" in kinds:
        # Every line ends with CRLF: no bare LF, no bare CR.
        assert data.count(b"\r\n") > 20 and b"\n" not in data.replace(b"\r\n", b"")
        assert b"\r" not in data.replace(b"\r\n", b"")
    else:
        assert b"\r" not in data
    assert (
        b": keep-alive\r\n" if "crlf" in kinds else b": keep-alive\n"
    ) in data or "comments" not in kinds
    assert (b": keep-alive" in data) == ("comments" in kinds)
    lines = data.replace(b"\r\n", b"\n").split(b"\n")
    assert (b"data: {" in lines) == ("multiline" in kinds)
    if "split" in kinds:
        broken = 0
        for piece in pieces:
            try:
                piece.decode()
            except UnicodeDecodeError:
                broken += 1
        assert broken >= 1, "no network write cut a character"
        assert len(pieces) > 2 * 21


def test_peak_in_flight_counts_overlapping_calls_of_both_protocols(server: EmulatorServer) -> None:
    server.reset()
    # Each stream sends one chunk, then holds still until its client leaves.
    held = marker(fault="stall", after=1, stall_seconds=60)
    aivvm = {
        "model": {"id": "gpt-4", "name": "GPT-4"},
        "messages": [{"role": "user", "content": "Held " + held}],
        "key": "",
        "prompt": "Be brief.",
        "temperature": 0.7,
    }
    with httpx.Client(base_url=server.url, timeout=10) as c:
        with c.stream(
            "POST", "/v1/chat/completions", json=chat("Held " + held, stream=True)
        ) as one:
            # Held by name: a dropped iterator would close its stream.
            first = one.iter_raw()
            next(first)
            with c.stream("POST", "/api/chat", json=aivvm) as two:
                second = two.iter_raw()
                next(second)
                assert server.stats()["in_flight"] == 2
    stats = server.wait_for_stats(lambda s: s["in_flight"] == 0)
    assert stats["peak_in_flight"] == 2 and stats["started"] == stats["disconnected"] == 2
    assert stats["by_protocol"]["openai"] == {"started": 1, "completed": 0, "rejected": 0}
    assert stats["by_protocol"]["aivvm"] == {"started": 1, "completed": 0, "rejected": 0}
    with httpx.Client(base_url=server.url, timeout=10) as c:
        assert c.post("/v1/chat/completions", json=chat("Quick")).status_code == 200
    assert server.stats()["peak_in_flight"] == 2
    server.reset()
    assert server.stats()["peak_in_flight"] == 0


def test_requests_record_what_was_sent_and_reset_clears_it(server: EmulatorServer) -> None:
    server.reset()
    body = chat("Record me", max_tokens=3, custom_field={"nested": [1, 2]})
    sent_at = time.time()
    with httpx.Client(base_url=server.url, timeout=10) as c:
        c.post(
            "/v1/chat/completions",
            json=body,
            headers={"Authorization": "Bearer sk-abc", "X-Trace": "t1"},
        )
        c.post("/v1/embeddings", json={"model": MODEL, "input": "x"})
        c.get("/v1/models")
        c.post("/v1/chat/completions", content=b"{broken")
    calls = server.requests()
    assert [(r["method"], r["path"]) for r in calls] == [
        ("POST", "/v1/chat/completions"),
        ("POST", "/v1/embeddings"),
        ("GET", "/v1/models"),
        ("POST", "/v1/chat/completions"),
    ]
    first = calls[0]
    assert first["body"] == body
    assert first["headers"]["authorization"] == "Bearer sk-abc"
    assert (
        first["headers"]["x-trace"] == "t1"
        and first["headers"]["content-type"] == "application/json"
    )
    assert all(name == name.lower() for name in first["headers"])
    assert sent_at - 1 <= first["received_at"] <= time.time()
    assert calls[2]["body"] is None and calls[3]["body"] is None
    assert server.requests(limit=2) == calls[2:]
    bad = server.http.get("/_emulator/requests", params={"limit": "lots"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "limit"
    server.reset()
    assert server.requests() == []


def test_key_models_and_rate_faults_apply_to_v1(emulator: Callable[..., EmulatorServer]) -> None:
    upstream = emulator(
        ttfb_ms=0,
        delay_ms=0,
        api_key="sk-right",
        openai_models=["m1", "m2"],
        fault_rate=1,
        faults=["503"],
        fault_times=1,
    )
    with openai.OpenAI(base_url=upstream.openai_url, api_key="sk-wrong", max_retries=0) as wrong:
        with pytest.raises(openai.AuthenticationError):
            wrong.models.list()
        with pytest.raises(openai.AuthenticationError):
            wrong.chat.completions.create(model="m1", messages=[{"role": "user", "content": "x"}])
    bare = httpx.post(upstream.openai_url + "/chat/completions", json=chat(model="m1"))
    assert bare.status_code == 401 and bare.json()["error"]["message"]
    with openai.OpenAI(base_url=upstream.openai_url, api_key="sk-right", max_retries=0) as right:
        assert [m.id for m in right.models.list()] == ["m1", "m2"]
        with pytest.raises(openai.NotFoundError):
            right.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "x"}])
        # Every call is faulted once (rate 1, at most 1 time per request), then answered.
        with pytest.raises(openai.InternalServerError):
            right.chat.completions.create(model="m1", messages=[{"role": "user", "content": "x"}])
        assert right.chat.completions.create(
            model="m1", messages=[{"role": "user", "content": "x"}]
        ).choices
    stats = upstream.stats()
    assert stats["faulted"]["503"] == 1 and stats["by_protocol"]["openai"]["rejected"] == 4
    keys = [
        r["headers"].get("authorization") for r in upstream.requests() if r["path"] != "/api/models"
    ]
    assert keys[:3] == ["Bearer sk-wrong", "Bearer sk-wrong", None]
    # The Aivvm protocol has no such key.
    aivvm = {
        "model": {"id": "gpt-4", "name": "GPT-4"},
        "messages": [{"role": "user", "content": "Hi"}],
        "key": "",
        "prompt": "p",
        "temperature": 0.7,
    }
    assert httpx.post(upstream.url + "/api/chat", json=aivvm, timeout=10).status_code in (200, 503)


def test_settings_from_flags_and_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIVBATCH_EMULATOR_OPENAI_MODELS", "a, b")
    monkeypatch.setenv("AIVBATCH_EMULATOR_API_KEY", "sk-env")
    settings = parse_settings([])
    assert settings.openai_models == ("a", "b") and settings.api_key == "sk-env"
    settings = parse_settings(["--openai-models", "c", "--api-key", "sk-flag"])
    assert settings.openai_models == ("c",) and settings.api_key == "sk-flag"
    monkeypatch.delenv("AIVBATCH_EMULATOR_API_KEY")
    assert parse_settings([]).api_key is None
    with pytest.raises(SystemExit):
        parse_settings(["--openai-models", ","])


def test_many_streams_at_once(server: EmulatorServer) -> None:
    """Forty concurrent streams, each read whole: the peak shows they overlapped."""
    server.reset()
    results: list[int] = []

    def read(i: int) -> None:
        body = chat(f"Question {i} " + marker(delay_ms=20, chunks=5), stream=True)
        with (
            httpx.Client(timeout=10) as c,
            connect_sse(c, "POST", server.openai_url + "/chat/completions", json=body) as s,
        ):
            results.append(sum(1 for _ in s.iter_sse()))

    threads = [threading.Thread(target=read, args=(i,)) for i in range(40)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(20)
    assert len(results) == 40 and set(results) == {1 + 5 + 1 + 1}
    stats = server.wait_for_stats(lambda s: s["in_flight"] == 0)
    assert stats["completed"] == 40 and stats["peak_in_flight"] > 1
