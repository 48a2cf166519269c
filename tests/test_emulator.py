"""The Aivvm emulator over real HTTP: protocol, validation, determinism, chunking, faults, stats."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.emulator import EmulatorServer, marker

MODELS = [
    ("gpt-3.5-turbo", "GPT-3.5"),
    ("gpt-3.5-turbo-0613", "GPT-3.5-0613"),
    ("gpt-3.5-turbo-16k", "GPT-3.5-16K"),
    ("gpt-3.5-turbo-16k-0613", "GPT-3.5-16K-0613"),
    ("gpt-4", "GPT-4"),
    ("gpt-4-0613", "GPT-4-0613"),
    ("gpt-4-32k", "GPT-4-32K"),
    ("gpt-4-32k-0613", "GPT-4-32K-0613"),
]


def body(content: str = "Hello there", **fields: Any) -> dict[str, Any]:
    """A chat body as the seed provider sends it."""
    return {
        "model": {"id": "gpt-3.5-turbo", "name": "GPT-3.5"},
        "messages": [{"role": "user", "content": content}],
        "key": "",
        "prompt": "You are a helpful assistant.",
        "temperature": 0.7,
        **fields,
    }


def about(size: int, target: int) -> bool:
    """Answers end on a whole sentence, so they miss their byte target by up to ~50 bytes."""
    return abs(size - target) <= 60


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmulatorServer]:
    """One quick emulator shared by the tests that need no flags of their own."""
    log = tmp_path_factory.mktemp("emulator") / "emulator.log"
    with EmulatorServer({"ttfb_ms": 0, "delay_ms": 2}, log=log) as running:
        yield running


@pytest.fixture
def client(server: EmulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as c:
        yield c


def test_lists_the_model_table_and_announces_itself(client: httpx.Client) -> None:
    response = client.get("/api/models")
    assert response.status_code == 200
    assert [(m["id"], m["name"]) for m in response.json()] == MODELS
    assert response.headers["x-aivvm-emulator"] == "aivbatch"


def test_startup_line_says_it_is_an_emulator(server: EmulatorServer) -> None:
    assert "a stand-in, not the real service" in server.log()
    assert f"listening on {server.url}" in server.log()


def test_answers_raw_text_in_chunks(client: httpx.Client) -> None:
    response = client.post("/api/chat", json=body())
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert response.headers["transfer-encoding"] == "chunked"
    assert response.headers["x-aivvm-emulator"] == "aivbatch"
    text = response.text
    assert text.isascii() and text.endswith(".") and len(text.split()) > 40
    assert about(len(response.content), 20 * 24)


@pytest.mark.parametrize(
    ("payload", "param"),
    [
        (b'{"model": ', "body"),
        (b"[1, 2]", "body"),
        (b"\xff\xfe{}", "body"),
        (body(model=None), "model"),
        (body(model="gpt-4"), "model"),
        (body(model={"id": "gpt-5", "name": "GPT-5"}), "model.id"),
        (body(model={"id": 4}), "model.id"),
        (body(model={"id": "gpt-4", "name": 4}), "model.name"),
        (body(messages=[]), "messages"),
        (body(messages="hi"), "messages"),
        (body(messages=["hi"]), "messages[0]"),
        (body(messages=[{"role": "user"}]), "messages[0].content"),
        (body(messages=[{"role": "user", "content": "a"}, {"content": "b"}]), "messages[1].role"),
        (body(messages=[{"role": "user", "content": 5}]), "messages[0].content"),
        (body(temperature="hot"), "temperature"),
        (body(temperature=2.5), "temperature"),
        (body(temperature=True), "temperature"),
        (body(temperature=None), "temperature"),
        (body(key=None), "key"),
        (body(prompt=7), "prompt"),
        (body("hi [[emulator chunks=many]]"), "emulator.chunks"),
        (body("hi [[emulator fault=418]]"), "emulator.fault"),
        (body("hi [[emulator colour=red]]"), "emulator.colour"),
        (body("hi [[emulator tag=a/b]]"), "emulator.tag"),
    ],
)
def test_validation_names_the_field(
    client: httpx.Client, payload: dict[str, Any] | bytes, param: str
) -> None:
    if isinstance(payload, bytes):
        response = client.post("/api/chat", content=payload)
    else:
        response = client.post("/api/chat", json=payload)
    assert response.status_code == 400, response.text
    assert response.headers["x-aivvm-emulator"] == "aivbatch"
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param
    field = param.removeprefix("emulator.")
    assert field.split(".")[-1].split("[")[0] in error["message"] or param == "body"


def test_missing_field_is_named(client: httpx.Client) -> None:
    for field in ("model", "messages", "key", "prompt", "temperature"):
        payload = body()
        del payload[field]
        error = client.post("/api/chat", json=payload).json()["error"]
        assert error["param"] == field and field in error["message"]


def test_unknown_path_wrong_method_and_big_body(client: httpx.Client) -> None:
    missing = client.get("/api/nothing")
    assert missing.status_code == 404 and missing.json()["error"]["message"]
    assert missing.headers["x-aivvm-emulator"] == "aivbatch"
    wrong = client.get("/api/chat")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    assert wrong.headers["x-aivvm-emulator"] == "aivbatch"
    big = client.post("/api/chat", json=body("x" * (1 << 20)))
    assert big.status_code == 413 and big.json()["error"]["param"] == "body"


def test_same_request_same_bytes_and_each_input_matters(client: httpx.Client) -> None:
    def answer(**fields: Any) -> bytes:
        response = client.post("/api/chat", json=body("Tell me about rivers", **fields))
        assert response.status_code == 200
        return response.content

    first = answer()
    assert answer() == first
    # The key is not part of the request's identity: same answer with another key.
    assert answer(key="sk-other") == first
    assert answer(temperature=0.2) != first
    assert answer(model={"id": "gpt-4", "name": "GPT-4"}) != first
    assert answer(prompt="Be brief.") != first


def test_cyrillic_answer_with_characters_split_across_chunks(server: EmulatorServer) -> None:
    content = "Привет! Как дела? " + marker(delay_ms=25, chunks=8, chunk_size=20)
    pieces: list[bytes] = []
    with httpx.Client(timeout=10) as c:
        with c.stream("POST", server.url + "/api/chat", json=body(content)) as response:
            assert response.status_code == 200
            pieces = list(response.iter_raw())
    data = b"".join(pieces)
    text = data.decode("utf-8")
    letters = [ch for ch in text if ch.isalpha()]
    assert letters and all("\u0400" <= ch <= "\u04ff" for ch in letters), text
    assert about(len(data), 8 * 20)
    # The delay keeps chunks apart on the wire, so the client sees the server's cuts.
    assert len(pieces) >= 6, [len(p) for p in pieces]
    split = 0
    for piece in pieces:
        try:
            piece.decode("utf-8")
        except UnicodeDecodeError:
            split += 1
    assert split >= 1, "no chunk boundary fell inside a character"


def test_marker_sets_chunking(client: httpx.Client) -> None:
    response = client.post("/api/chat", json=body("Hi " + marker(chunks=3, chunk_size=100)))
    assert about(len(response.content), 300)


@pytest.mark.parametrize("kind", ["429", "500", "503", "400", "401", "403", "html"])
def test_whole_response_faults(client: httpx.Client, kind: str) -> None:
    response = client.post("/api/chat", json=body(f"Fault {kind} " + marker(fault=kind)))
    assert response.headers["x-aivvm-emulator"] == "aivbatch"
    if kind == "429":
        assert response.status_code == 429
        assert response.headers["retry-after"] == "1"
        assert response.json()["error"]["type"] == "rate_limit_error"
    elif kind in ("500", "503"):
        assert response.status_code == int(kind)
        assert response.json()["error"]["type"] == "server_error"
    elif kind in ("400", "401"):
        assert response.status_code == int(kind)
        assert response.json()["error"]["type"] == "invalid_request_error"
    elif kind == "403":
        assert response.status_code == 403
        assert response.headers["content-type"].startswith("text/html")
        assert "Just a moment..." in response.text
    else:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert "<html" in response.text


def test_fault_times_then_answers_and_retry_after(client: httpx.Client) -> None:
    payload = body("Busy? " + marker(fault="429", times=2, retry_after=7))
    first = client.post("/api/chat", json=payload)
    second = client.post("/api/chat", json=payload)
    third = client.post("/api/chat", json=payload)
    assert [first.status_code, second.status_code, third.status_code] == [429, 429, 200]
    assert first.headers["retry-after"] == "7"
    assert third.text and third.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize("kind", ["reset", "error_event"])
def test_reset_leaves_an_incomplete_body(
    client: httpx.Client, server: EmulatorServer, kind: str
) -> None:
    # The raw-text protocol has no events: an error event plays as a reset.
    before = server.stats()["faulted"][kind]
    received = b""
    with pytest.raises(httpx.RemoteProtocolError):
        with client.stream("POST", "/api/chat", json=body("Cut " + marker(fault=kind))) as r:
            assert r.status_code == 200
            for piece in r.iter_raw():
                received += piece
    assert 8 * 24 <= len(received) < 20 * 24
    assert server.stats()["faulted"][kind] == before + 1


def test_stall_goes_silent_and_frees_the_stream_on_disconnect(
    client: httpx.Client, server: EmulatorServer
) -> None:
    before = server.stats()
    timeout = httpx.Timeout(10, read=0.4)
    received = b""
    started = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        with client.stream(
            "POST",
            "/api/chat",
            json=body("Wait " + marker(fault="stall", after=3)),
            timeout=timeout,
        ) as r:
            for piece in r.iter_raw():
                received += piece
    assert time.monotonic() - started >= 0.4
    assert 0 < len(received) < 20 * 24
    # The client hung up: the emulator notices at once, not after its 300 s stall.
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        after = server.stats()
        if after["disconnected"] > before["disconnected"] and after["in_flight"] == 0:
            break
        time.sleep(0.05)
    assert after["disconnected"] == before["disconnected"] + 1
    assert after["in_flight"] == 0


def test_short_stall_resumes_and_completes(client: httpx.Client) -> None:
    started = time.monotonic()
    response = client.post(
        "/api/chat", json=body("Pause " + marker(fault="stall", stall_seconds=0.5))
    )
    assert response.status_code == 200 and about(len(response.content), 20 * 24)
    assert time.monotonic() - started >= 0.5


def test_client_leaving_mid_stream_is_counted(server: EmulatorServer) -> None:
    before = server.stats()["disconnected"]
    with httpx.Client(timeout=10) as c:
        with c.stream("POST", server.url + "/api/chat", json=body(marker(delay_ms=50))) as r:
            next(r.iter_raw())
    deadline = time.monotonic() + 3
    while server.stats()["disconnected"] == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.stats()["disconnected"] == before + 1


def _run_with_retries(c: httpx.Client, n: int) -> list[list[int]]:
    """Each of n requests retried until it succeeds; the statuses each one saw."""
    seen = []
    for i in range(n):
        statuses: list[int] = []
        while not statuses or statuses[-1] != 200:
            statuses.append(c.post("/api/chat", json=body(f"Question {i}")).status_code)
            assert len(statuses) <= 3, statuses
        seen.append(statuses)
    return seen


def test_rate_faults_are_deterministic_and_bounded(
    emulator: Callable[..., EmulatorServer],
) -> None:
    upstream = emulator(ttfb_ms=0, delay_ms=0, fault_rate=0.5, faults=["429", "500"], fault_times=2)
    with httpx.Client(base_url=upstream.url, timeout=10) as c:
        first = _run_with_retries(c, 40)
        upstream.reset()
        assert _run_with_retries(c, 40) == first
    faulted = sum(len(s) - 1 for s in first)
    assert 10 <= faulted <= 60, first
    assert {code for s in first for code in s} == {200, 429, 500}
    # A fresh process makes the same choices: nothing depends on time or process state.
    upstream.stop()
    upstream.start()
    with httpx.Client(base_url=upstream.url, timeout=10) as c:
        assert _run_with_retries(c, 40) == first
    stats = upstream.stats()
    assert stats["faulted"]["429"] + stats["faulted"]["500"] == faulted
    assert stats["completed"] == 40


def test_stats_count_by_tag_and_reset_zeroes_them(emulator: Callable[..., EmulatorServer]) -> None:
    upstream = emulator(ttfb_ms=0, delay_ms=0)
    with httpx.Client(base_url=upstream.url, timeout=10) as c:
        for _ in range(2):
            c.post("/api/chat", json=body("One " + marker(tag="a")))
        c.post("/api/chat", json=body("Two " + marker(tag="b", fault="500")))
        c.post("/api/chat", json=body(model={"id": "nope"}))
    stats = upstream.stats()
    assert stats["started"] == 3 and stats["completed"] == 2 and stats["in_flight"] == 0
    assert stats["started_by_tag"] == {"a": 2, "b": 1}
    assert stats["completed_by_tag"] == {"a": 2}
    assert stats["faulted"]["500"] == 1 and stats["rejected"] == 1
    upstream.reset()
    zeroed = upstream.stats()
    assert zeroed["started"] == zeroed["completed"] == zeroed["rejected"] == 0
    assert zeroed["started_by_tag"] == {} and set(zeroed["faulted"].values()) == {0}


def test_marker_helper_and_restart_on_same_port(
    emulator: Callable[..., EmulatorServer], tmp_path: Path
) -> None:
    assert marker(fault="429", times=1) == "[[emulator fault=429 times=1]]"
    assert marker() == "[[emulator]]"
    with pytest.raises(ValueError):
        marker(tag="two words")
    upstream = emulator(chunks=2)
    url = upstream.url
    upstream.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(url + "/api/models")
    upstream.start()
    assert upstream.url == url
    assert httpx.get(url + "/api/models").status_code == 200
