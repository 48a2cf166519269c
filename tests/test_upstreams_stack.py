"""Upstreams through the whole stack: API → dispatcher → two real worker processes → the
emulator over HTTP (its OpenAI protocol and Aivvm's), on SQLite and PostgreSQL.

One stack per backend serves the module (tests keep apart by tenant). Its routing file:
``dead`` (an OpenAI upstream where nothing listens, falling back to ``local``), ``local``
(the emulator's /v1, with a key, ``model_map`` and ``max_in_flight = 3``) and ``seed``
(kind aivvm, a second emulator). Byte-level cases of the provider:
test_provider_openai.py; the routing file alone: test_upstreams_config.py.
"""

from __future__ import annotations

import io
import json
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest
import redis

from cli.embedded import free_port
from models.rediskeys import RedisKeys
from tests.support.api import AIVBATCH, ApiServer, Tenants
from tests.support.emulator import EmulatorServer, marker
from tests.support.pipeline import read_stream
from tests.support.stack import Stack, service_env
from tests.support.wait import wait_until

pytestmark = pytest.mark.slow

KEY_VAR = "AIVTEST_LOCAL_KEY"
KEY = "sk-local-upstream-secret-4d1c"
MAX_IN_FLIGHT = 3
ENDED = ("completed", "failed", "expired", "cancelled")

CONFIG = """
[[upstreams]]
name = "dead"
kind = "openai"
base_url = "http://127.0.0.1:{dead_port}/v1"
models = ["flaky"]
fallback = ["local"]

[[upstreams]]
name = "local"
kind = "openai"
base_url = "{local}/v1"
api_key_env = "{key_var}"
models = ["llama-*", "qwen2.5-7b", "text-embedding-3-small"]
model_map = {{ "gpt-4o-mini" = "qwen2.5-7b", "flaky" = "llama-3.1-8b-instruct" }}
max_in_flight = {max_in_flight}

[[upstreams]]
name = "seed"
kind = "aivvm"
base_url = "{seed}"
"""


@dataclass
class Service:
    """The module's stack: emulators, processes, the API, and how to reach each."""

    local: EmulatorServer
    seed: EmulatorServer
    stack: Stack
    api: ApiServer
    tenants: Tenants
    redis_url: str
    keys: RedisKeys
    config: Path

    def client(self) -> httpx.Client:
        """An API client of a new tenant."""
        return self.api.client(self.tenants.key())

    def sdk(self, client: httpx.Client) -> openai.OpenAI:
        """The official package, unmodified, as that tenant."""
        key = client.headers["authorization"].removeprefix("Bearer ")
        return openai.OpenAI(base_url=f"{self.api.url}/v1", api_key=key, max_retries=0)

    def logs(self) -> str:
        return self.stack.log_text() + self.api.text()

    def wait(self, client: httpx.Client, batch_id: str, timeout: float = 60) -> dict[str, Any]:
        """The batch object once it has ended."""

        def ended() -> dict[str, Any] | None:
            batch: dict[str, Any] = client.get(f"/v1/batches/{batch_id}").json()
            return batch if batch["status"] in ENDED else None

        return wait_until(ended, timeout, f"batch {batch_id} to end", self.logs)


@pytest.fixture(scope="module")
def service(
    shared_database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    folder = tmp_path_factory.mktemp("upstreams")
    local = EmulatorServer(
        {"ttfb_ms": 0, "delay_ms": 15, "chunks": 5, "api_key": KEY}, log=folder / "local.log"
    ).start()
    seed = EmulatorServer({"ttfb_ms": 0, "delay_ms": 10, "chunks": 4}, log=folder / "seed.log")
    seed.start()
    config = folder / "aivbatch.toml"
    config.write_text(
        CONFIG.format(
            dead_port=free_port(),
            local=local.url,
            seed=seed.url,
            key_var=KEY_VAR,
            max_in_flight=MAX_IN_FLIGHT,
        )
    )
    prefix = f"aivtest-{uuid.uuid4().hex[:10]}"
    env = service_env(
        database_url=shared_database_url,
        redis_url=redis_url,
        prefix=prefix,
        settings={"CONFIG": str(config), "WORKER_STREAMS": "8", "DISPATCH_GROUP": "4"},
    )
    env[KEY_VAR] = KEY
    logs = folder / "stack"
    logs.mkdir()
    stack = Stack(env=env, emulator=local, logs=logs)
    api = ApiServer(env=env, log=folder / "api.log")
    try:
        stack.start_worker()
        stack.start_worker()
        stack.start_dispatcher()
        # Patient: the stack's own processes start at the same time on two cores.
        api.start(timeout=90)
        yield Service(
            local,
            seed,
            stack,
            api,
            Tenants(shared_database_url),
            redis_url,
            RedisKeys(prefix),
            config,
        )
    finally:
        api.stop()
        stack.stop()
        local.stop()
        seed.stop()
        client = redis.Redis.from_url(redis_url)
        for key in client.scan_iter(match=f"{prefix}:*", count=1000):
            client.delete(key)
        client.close()


def batch_line(custom_id: str, body: dict[str, Any], url: str = "/v1/chat/completions") -> str:
    return json.dumps(
        {"custom_id": custom_id, "method": "POST", "url": url, "body": body}, ensure_ascii=False
    )


def upload(sdk: openai.OpenAI, lines: list[str]) -> str:
    data = "\n".join(lines).encode()
    return sdk.files.create(file=("in.jsonl", io.BytesIO(data)), purpose="batch").id


def run_batch(
    service: Service, sdk: openai.OpenAI, lines: list[str], endpoint: str = "/v1/chat/completions"
) -> tuple[openai.types.Batch, dict[str, dict[str, Any]]]:
    """Upload, create, wait; the ended batch and its output and error lines by custom_id."""
    batch = sdk.batches.create(
        input_file_id=upload(sdk, lines),
        endpoint=endpoint,  # type: ignore[arg-type]
        completion_window="24h",
    )
    assert batch.status == "in_progress"

    def ended() -> openai.types.Batch | None:
        current = sdk.batches.retrieve(batch.id)
        raw = sdk.batches.with_raw_response.retrieve(batch.id).http_response.json()
        openai.types.Batch.model_validate(raw, strict=True)
        return current if current.status in ENDED else None

    done = wait_until(ended, 60, f"batch {batch.id} to end", service.logs)
    lines_by_id: dict[str, dict[str, Any]] = {}
    for file_id in (done.output_file_id, done.error_file_id):
        if file_id:
            for row in sdk.files.content(file_id).text.splitlines():
                line = json.loads(row)
                lines_by_id[line["custom_id"]] = line
    return done, lines_by_id


def sent_to(emulator: EmulatorServer, needle: str) -> list[dict[str, Any]]:
    """The calls the emulator received whose body mentions ``needle``."""
    return [r for r in emulator.requests() if needle in json.dumps(r["body"], ensure_ascii=False)]


def test_openai_batch_fields_reach_the_upstream_and_its_answers_come_back_whole(
    service: Service,
) -> None:
    api = service.client()
    tag = uuid.uuid4().hex[:8]
    parts = [
        {"type": "text", "text": f"Describe this picture {tag}-a"},
        {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}},
    ]
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
            },
        }
    ]
    passthrough = {
        "max_tokens": 40,
        "seed": 11,
        "stop": ["zzzz"],
        "user": "tester",
        "presence_penalty": 0.1,
        "frequency_penalty": 0.1,
        "n": 2,
        "logprobs": True,
        "top_logprobs": 2,
        "temperature": 0.4,
    }
    lines = [
        batch_line(
            "parts",
            {
                "model": "gpt-4o-mini",
                "messages": [
                    {"role": "developer", "content": "Answer briefly."},
                    {"role": "user", "content": parts},
                ],
                **passthrough,
            },
        ),
        batch_line(
            "json",
            {
                "model": "qwen2.5-7b",
                "messages": [{"role": "user", "content": f"Give me JSON {tag}-b"}],
                "response_format": {"type": "json_object"},
                "max_completion_tokens": 200,
            },
        ),
        batch_line(
            "tools",
            {
                "model": "llama-3.1-8b-instruct",
                "messages": [
                    {"role": "user", "content": f"Weather in Oslo? {tag}-c {marker(tool=1)}"}
                ],
                "tools": tools,
                "tool_choice": "auto",
                "parallel_tool_calls": False,
            },
        ),
        batch_line(
            "history",
            {
                "model": "llama-3.1-8b-instruct",
                "messages": [
                    {"role": "user", "content": f"Weather in Oslo? {tag}-d"},
                    {
                        "role": "assistant",
                        "content": None,
                        "tool_calls": [
                            {
                                "id": "call_1",
                                "type": "function",
                                "function": {"name": "get_weather", "arguments": '{"city":"Oslo"}'},
                            }
                        ],
                    },
                    {"role": "tool", "tool_call_id": "call_1", "content": "4 degrees"},
                ],
                "tools": tools,
            },
        ),
        batch_line(
            "refused",
            {
                "model": "qwen2.5-7b",
                "messages": [{"role": "user", "content": f"No {tag}-e {marker(fault='400')}"}],
            },
        ),
    ]
    with service.sdk(api) as sdk:
        batch, out = run_batch(service, sdk, lines)
    assert batch.status == "completed", service.logs()
    assert batch.request_counts is not None
    assert (batch.request_counts.completed, batch.request_counts.failed) == (4, 1)

    # What the upstream received: every field as given, the model mapped, streaming ours.
    (call,) = sent_to(service.local, f"{tag}-a")
    body = call["body"]
    assert call["path"] == "/v1/chat/completions"
    assert call["headers"]["authorization"] == f"Bearer {KEY}"
    assert body["model"] == "qwen2.5-7b"
    assert body["messages"][1]["content"] == parts and body["messages"][0]["role"] == "developer"
    assert {k: body[k] for k in passthrough} == passthrough
    assert (body["stream"], body["stream_options"]) == (True, {"include_usage": True})
    assert sent_to(service.local, f"{tag}-b")[0]["body"]["response_format"] == {
        "type": "json_object"
    }
    history = sent_to(service.local, f"{tag}-d")[0]["body"]
    assert [m["role"] for m in history["messages"]] == ["user", "assistant", "tool"]
    assert history["messages"][1]["tool_calls"][0]["id"] == "call_1"

    # What came back: the upstream's own completion, every choice, real usage.
    completions = {
        cid: openai.types.chat.ChatCompletion.model_validate(line["response"]["body"])
        for cid, line in out.items()
        if cid != "refused"
    }
    both = completions["parts"]
    assert [c.index for c in both.choices] == [0, 1]
    assert all(c.message.content and c.logprobs and c.logprobs.content for c in both.choices)
    assert both.model == "qwen2.5-7b" and both.id.startswith("chatcmpl")
    json.loads(completions["json"].choices[0].message.content or "")
    called = completions["tools"].choices[0]
    assert called.finish_reason == "tool_calls" and called.message.tool_calls
    assert called.message.tool_calls[0].function.name == "get_weather"  # type: ignore[union-attr]
    prompt_tokens = sum(c.usage.prompt_tokens for c in completions.values() if c.usage)
    assert prompt_tokens > 0 and batch.usage is not None
    assert batch.usage.input_tokens == prompt_tokens
    assert batch.usage.output_tokens == sum(
        c.usage.completion_tokens for c in completions.values() if c.usage
    )

    # An upstream's HTTP error is written as OpenAI writes one.
    refused = out["refused"]
    assert refused["error"] is None and refused["response"]["status_code"] == 400
    assert refused["response"]["body"]["error"]["message"]

    # Redis: choice 0's text in chunk entries, choice 1's in delta entries, tool calls whole.
    r = redis.Redis.from_url(service.redis_url)
    try:
        view = read_stream(r, service.keys, batch.id, "parts")
        assert view.text_of(1) == both.choices[0].message.content
        deltas = "".join(e["text"] for e in view.events("delta") if e["choice"] == "1")
        assert deltas == both.choices[1].message.content
        calls = read_stream(r, service.keys, batch.id, "tools").events("tool_call")
        assert calls[0]["name"] == "get_weather" and calls[0]["id"]
        assert "".join(e["arguments"] for e in calls) == (
            called.message.tool_calls[0].function.arguments  # type: ignore[union-attr]
        )
    finally:
        r.close()

    # The job object names the upstream of each attempt.
    job = api.get(f"/v1/batches/{batch.id}/jobs/parts").json()
    assert job["upstream"] == "local" and job["usage"]["input_tokens"] > 0
    assert [{k: v for k, v in e.items() if v is not None} for e in job["attempt_log"]] == [
        {
            "attempt": 1,
            "upstream": "local",
            "status": "succeeded",
            "finish_reason": both.choices[0].finish_reason,
        }
    ]


def test_embeddings_and_responses_batches(service: Service) -> None:
    api = service.client()
    tag = uuid.uuid4().hex[:8]
    with service.sdk(api) as sdk:
        inputs = [f"first {tag}", [f"second {tag}", "third"]]
        lines = [
            batch_line(
                f"e{i}", {"model": "text-embedding-3-small", "input": text}, "/v1/embeddings"
            )
            for i, text in enumerate(inputs)
        ]
        batch, out = run_batch(service, sdk, lines, "/v1/embeddings")
        assert batch.status == "completed", service.logs()
        for cid, count in (("e0", 1), ("e1", 2)):
            answer = openai.types.CreateEmbeddingResponse.model_validate(
                out[cid]["response"]["body"]
            )
            assert len(answer.data) == count and answer.usage.prompt_tokens > 0
        lines = [
            batch_line(
                "r0",
                {
                    "model": "llama-3.1-8b-instruct",
                    "input": f"Hello {tag}",
                    "max_output_tokens": 50,
                },
                "/v1/responses",
            )
        ]
        batch, out = run_batch(service, sdk, lines, "/v1/responses")
        assert batch.status == "completed", service.logs()
        response = openai.types.responses.Response.model_validate(out["r0"]["response"]["body"])
        assert response.output_text and response.usage and response.usage.input_tokens > 0
        # A chat model line in an embeddings batch is refused at once, naming the endpoint.
        bad = batch_line("x", {"model": "gpt-4", "input": "x"}, "/v1/embeddings")
        with pytest.raises(openai.BadRequestError) as caught:
            sdk.files.create(file=("x.jsonl", io.BytesIO(bad.encode())), purpose="batch")
        assert "supports only /v1/chat/completions, not /v1/embeddings" in caught.value.message


def test_routing_model_map_fallback_and_the_aivvm_upstream_in_one_batch(service: Service) -> None:
    api = service.client()
    tag = uuid.uuid4().hex[:8]
    requests = [
        {"custom_id": "seed", "model": "gpt-4", "messages": [{"role": "user", "content": tag}]},
        {
            "custom_id": "mapped",
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": f"{tag} m"}],
        },
        {
            "custom_id": "flaky",
            "model": "flaky",
            "messages": [{"role": "user", "content": f"{tag} f"}],
        },
    ]
    created = api.post("/v1/batches", json={"requests": requests})
    assert created.status_code == 200, created.text
    batch = service.wait(api, created.json()["id"])
    assert batch["counts"]["succeeded"] == 3, service.logs()
    jobs = {
        j["custom_id"]: j
        for j in map(json.loads, api.get(f"/v1/batches/{batch['id']}/results").text.splitlines())
    }
    # The Aivvm upstream answered text, as before: no upstream body, characters for usage.
    assert jobs["seed"]["upstream"] == "seed" and jobs["seed"]["response"] is None
    assert jobs["seed"]["output"] and sent_to(service.seed, tag)
    assert jobs["mapped"]["response"]["model"] == "qwen2.5-7b"
    assert sent_to(service.local, f"{tag} m")[0]["body"]["model"] == "qwen2.5-7b"
    # Nothing listens where "dead" points: the retry went to its fallback at once.
    log = jobs["flaky"]["attempt_log"]
    assert [(e["upstream"], e["status"]) for e in log] == [
        ("dead", "queued"),
        ("local", "succeeded"),
    ]
    assert log[0]["code"] == "upstream_unavailable"
    assert sent_to(service.local, f"{tag} f")[0]["body"]["model"] == "llama-3.1-8b-instruct"
    # /metrics counts attempts by the upstream that served them.
    wait_until(
        lambda: (
            'aivbatch_upstream_attempts_total{status="queued",upstream="dead"}'
            in httpx.get(service.api.url + "/metrics").text
        ),
        10,
        "the dead upstream's attempt in /metrics",
    )


def test_unknown_models_are_refused_at_submission_and_models_are_listed(service: Service) -> None:
    api = service.client()
    r = api.post(
        "/v1/batches",
        json={
            "requests": [
                {
                    "custom_id": "a",
                    "model": "gpt-4o",
                    "messages": [{"role": "user", "content": "x"}],
                }
            ]
        },
    )
    assert r.status_code == 400
    error = r.json()["error"]
    assert error["code"] == "unsupported_request"
    assert (
        "model 'gpt-4o' is not served here; models served: flaky, gpt-4o-mini" in error["message"]
    )
    assert "llama-*" in error["message"]
    assert api.get("/v1/batches").json()["data"] == []
    with service.sdk(api) as sdk:
        listed = {m.id: m.owned_by for m in sdk.models.list()}
        assert listed["gpt-4o-mini"] == "local" and listed["gpt-4"] == "seed"
        assert listed["flaky"] == "dead" and "llama-*" not in listed
        assert sdk.models.retrieve("llama-3.1-8b-instruct").owned_by == "local"
        with pytest.raises(openai.NotFoundError):
            sdk.models.retrieve("gpt-4o")


def test_upstreams_check_says_what_answered(service: Service) -> None:
    done = subprocess.run(
        [AIVBATCH, "upstreams", "check", "--timeout", "5"],
        env=service.stack.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = done.stdout.splitlines()
    assert done.returncode == 1, done.stdout + done.stderr
    assert lines[0] == f"routing: {service.config}"
    assert lines[1].startswith("failed dead (openai, http://127.0.0.1:")
    assert lines[2].startswith(f"ok local (openai, {service.local.url}/v1): answered 200 in ")
    assert lines[3].startswith(f"ok seed (aivvm, {service.seed.url}): answered 200 in ")
    assert KEY not in done.stdout + done.stderr


def test_a_429_pauses_the_upstream_for_every_worker(service: Service) -> None:
    api = service.client()
    tag = uuid.uuid4().hex[:8]
    busy = marker(fault="429", retry_after=2, times=1)
    first = api.post(
        "/v1/batches",
        json={
            "requests": [
                {
                    "custom_id": "busy",
                    "model": "qwen2.5-7b",
                    "messages": [{"role": "user", "content": f"{tag} busy {busy}"}],
                }
            ]
        },
    ).json()
    hit = wait_until(lambda: sent_to(service.local, f"{tag} busy"), 30, "the 429", service.logs)
    paused_at = hit[0]["received_at"]
    later = [
        {
            "custom_id": f"q{i}",
            "model": "qwen2.5-7b",
            "messages": [{"role": "user", "content": f"{tag} later {i}"}],
        }
        for i in range(4)
    ]
    later.append(
        {
            "custom_id": "other",
            "model": "gpt-4",
            "messages": [{"role": "user", "content": f"{tag} other"}],
        }
    )
    second = api.post("/v1/batches", json={"requests": later}).json()
    for batch in (first, second):
        assert service.wait(api, batch["id"])["status"] == "completed"
    calls = [c for c in service.local.requests() if tag in json.dumps(c["body"])]
    after = [c["received_at"] - paused_at for c in calls[1:]]
    # Both workers held off for the Retry-After; the other upstream was not.
    assert len(after) == 5 and min(after) >= 1.9, after
    other = sent_to(service.seed, f"{tag} other")[0]["received_at"] - paused_at
    assert other < 1.5, other


def test_max_in_flight_holds_across_workers_without_blocking_other_upstreams(
    service: Service,
) -> None:
    api = service.client()
    tag = uuid.uuid4().hex[:8]
    service.local.reset()
    slow = marker(chunks=8, delay_ms=100)
    limited = [
        {
            "custom_id": f"l{i}",
            "model": "qwen2.5-7b",
            "messages": [{"role": "user", "content": f"{tag} {i} {slow}"}],
        }
        for i in range(12)
    ]
    other = [
        {
            "custom_id": f"s{i}",
            "model": "gpt-4",
            "messages": [{"role": "user", "content": f"{tag} s{i}"}],
        }
        for i in range(4)
    ]
    first = api.post("/v1/batches", json={"requests": limited}).json()
    second = api.post("/v1/batches", json={"requests": other}).json()
    # The other upstream's jobs end while the limited one's are still queued behind it.
    done = service.wait(api, second["id"])
    assert done["counts"]["succeeded"] == 4
    still = api.get(f"/v1/batches/{first['id']}").json()["counts"]
    assert still["queued"] >= 3, still
    keys = service.keys
    r = redis.Redis.from_url(service.redis_url)
    try:
        # A worker killed while streaming: its permits come back by themselves.
        permits = keys.upstream_permits("local")
        pids = {f":{p.pid}:".encode(): i for i, p in enumerate(service.stack.workers)}

        def holder() -> tuple[bytes, int] | None:
            for member in r.zrange(permits, 0, -1):
                for pid, index in pids.items():
                    if pid in member and service.stack.workers[index].poll() is None:
                        return pid, index
            return None

        pid, index = wait_until(holder, 20, "a worker holding a permit", service.logs)
        service.stack.kill_worker(index)
        service.stack.start_worker()
        wait_until(
            lambda: not [m for m in r.zrange(permits, 0, -1) if pid in m],
            15,
            "the killed worker's permits to expire",
            service.logs,
        )
        assert service.wait(api, first["id"], timeout=90)["counts"]["succeeded"] == 12
        assert r.zcard(permits) == 0
    finally:
        r.close()
    assert 1 <= service.local.stats()["peak_in_flight"] <= MAX_IN_FLIGHT
