"""The emulator's OpenAI protocol over real HTTP, held to the openai package's own types.

Every SSE chunk, event and whole answer is validated with ``openai.types``; the unmodified
``openai`` client is pointed at the emulator. Faults, framing variations and introspection
are in ``test_emulator_openai_faults.py``.
"""

from __future__ import annotations

import base64
import json
import math
import struct
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pydantic
import pytest
from httpx_sse import connect_sse
from openai.types import Completion, CreateEmbeddingResponse, Model
from openai.types.chat import ChatCompletion, ChatCompletionChunk, ChatCompletionFunctionToolParam
from openai.types.responses import Response, ResponseStreamEvent

from tests.support.emulator import EmulatorServer, marker

MODEL = "gpt-4o-mini"
EVENT = pydantic.TypeAdapter(ResponseStreamEvent)
WEATHER: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "The weather in a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string"},
                "days": {"type": "integer", "minimum": 1, "maximum": 7},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                "note": {"type": "string"},
            },
            "required": ["city", "days", "unit"],
        },
    },
}
CLOCK: ChatCompletionFunctionToolParam = {
    "type": "function",
    "function": {"name": "get_time", "parameters": {"type": "object"}},
}


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


@pytest.fixture(scope="module")
def client(server: EmulatorServer) -> Iterator[openai.OpenAI]:
    c = openai.OpenAI(base_url=server.openai_url, api_key="sk-emulated", max_retries=0)
    yield c
    c.close()


def sse(http: httpx.Client, path: str, body: dict[str, Any]) -> list[tuple[str, str]]:
    """(event, data) of every event, read with httpx-sse; checks the content type."""
    with connect_sse(http, "POST", path, json=body) as source:
        assert source.response.status_code == 200, source.response.read()
        assert source.response.headers["content-type"].startswith("text/event-stream")
        assert source.response.headers["x-aivbatch-emulator"] == "aivbatch"
        return [(event.event, event.data) for event in source.iter_sse()]


def chat_chunks(http: httpx.Client, body: dict[str, Any]) -> list[dict[str, Any]]:
    """A streamed chat's chunks, each validated as a ChatCompletionChunk; [DONE] checked."""
    events = sse(http, "/chat/completions", body | {"stream": True})
    assert events[-1] == ("message", "[DONE]")
    chunks = [json.loads(data) for _, data in events[:-1]]
    for chunk in chunks:
        ChatCompletionChunk.model_validate(chunk)
    return chunks


def assemble(chunks: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Per choice index: role, content, tool calls, finish reason, logprob tokens."""
    choices: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for choice in chunk["choices"]:
            got = choices.setdefault(
                choice["index"],
                {"role": None, "content": "", "tools": {}, "finish": None, "tokens": []},
            )
            assert got["finish"] is None, "a chunk after the choice finished"
            delta = choice["delta"]
            got["role"] = got["role"] or delta.get("role")
            got["content"] += delta.get("content") or ""
            for call in delta.get("tool_calls") or ():
                slot = got["tools"].setdefault(call["index"], {"arguments": ""})
                if call.get("id"):
                    slot.update(id=call["id"], type=call["type"], name=call["function"]["name"])
                slot["arguments"] += call["function"].get("arguments") or ""
            got["tokens"] += [e["token"] for e in (choice["logprobs"] or {}).get("content") or ()]
            got["finish"] = choice["finish_reason"]
    return choices


def test_models_listing(http: httpx.Client, client: openai.OpenAI) -> None:
    response = http.get("/models")
    assert response.status_code == 200
    assert response.headers["x-aivbatch-emulator"] == "aivbatch"
    listing = response.json()
    assert listing["object"] == "list"
    models = [Model.model_validate(m) for m in listing["data"]]
    expected = ["gpt-4o-mini", "llama-3.1-8b-instruct", "qwen2.5-7b", "text-embedding-3-small"]
    assert [m.id for m in models] == expected
    assert [m.id for m in client.models.list()] == expected
    assert client.models.retrieve("qwen2.5-7b").owned_by == "aivbatch-emulator"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("gpt-5")


def test_chat_stream_chunks_and_usage(http: httpx.Client) -> None:
    body = chat(n=2, stream_options={"include_usage": True}, logprobs=True, top_logprobs=3)
    chunks = chat_chunks(http, body)
    assert {c["id"] for c in chunks} == {chunks[0]["id"]} and chunks[0]["id"].startswith(
        "chatcmpl-"
    )
    assert {c["object"] for c in chunks} == {"chat.completion.chunk"}
    assert all(c["model"] == MODEL and c["system_fingerprint"] for c in chunks)
    usage_chunk = chunks[-1]
    assert usage_chunk["choices"] == []
    choices = assemble(chunks[:-1])
    assert sorted(choices) == [0, 1]
    for index in (0, 1):
        first = next(c for c in chunks if c["choices"] and c["choices"][0]["index"] == index)
        assert first["choices"][0]["delta"]["role"] == "assistant"
        got = choices[index]
        assert got["finish"] == "stop" and len(got["content"].split()) > 40
        assert "".join(got["tokens"]) == got["content"]
    assert choices[0]["content"] != choices[1]["content"]
    # 20 chunks of content per choice, after the role chunk, then the finishing chunk.
    per_choice = [c for c in chunks if c["choices"] and c["choices"][0]["index"] == 0]
    assert len(per_choice) == 1 + 20 + 1
    top = per_choice[1]["choices"][0]["logprobs"]["content"][0]["top_logprobs"]
    assert len(top) == 3 and top[0]["logprob"] >= top[1]["logprob"] >= top[2]["logprob"]
    usage = usage_chunk["usage"]
    words = sum(len(c["content"].split()) for c in choices.values())
    assert usage["completion_tokens"] == words
    assert usage["prompt_tokens"] == 3 + 4 + 4  # priming, one message, four words
    assert usage["total_tokens"] == usage["prompt_tokens"] + words
    assert usage["prompt_tokens_details"] == {"cached_tokens": 0, "audio_tokens": 0}
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 0


def test_chat_without_usage_option_sends_no_usage_chunk(http: httpx.Client) -> None:
    chunks = chat_chunks(http, chat())
    assert all(c["choices"] for c in chunks) and all("usage" not in c for c in chunks)
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_whole_answer_is_the_stream_assembled(http: httpx.Client) -> None:
    body = chat(n=3, logprobs=True, stream_options={"include_usage": True})
    streamed = chat_chunks(http, body)
    whole = http.post("/chat/completions", json={**body, "stream_options": None})
    assert whole.status_code == 200 and whole.headers["content-type"] == "application/json"
    completion = ChatCompletion.model_validate(whole.json())
    assert completion.object == "chat.completion"
    choices = assemble(streamed[:-1])
    for choice in completion.choices:
        assert choice.message.content == choices[choice.index]["content"]
        assert choice.finish_reason == "stop"
        assert choice.logprobs and choice.logprobs.content
        assert [e.token for e in choice.logprobs.content] == choices[choice.index]["tokens"]
    assert completion.usage is not None
    usage = completion.usage.model_dump(exclude_none=True)
    assert usage == streamed[-1]["usage"]


def test_openai_client_streams_n_tools_logprobs_and_formats(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        stream=True,
        stream_options={"include_usage": True},
        n=2,
        tools=[WEATHER, CLOCK],
        tool_choice="required",
    )
    calls: dict[int, dict[str, str]] = {}
    finish: dict[int, str | None] = {}
    usage = None
    for chunk in stream:
        usage = chunk.usage or usage
        for choice in chunk.choices:
            finish[choice.index] = choice.finish_reason or finish.get(choice.index)
            for call in choice.delta.tool_calls or ():
                slot = calls.setdefault(choice.index, {"arguments": ""})
                if call.id:
                    assert call.function and call.function.name and call.type == "function"
                    slot["id"], slot["name"] = call.id, call.function.name
                slot["arguments"] += (call.function.arguments if call.function else None) or ""
    assert finish == {0: "tool_calls", 1: "tool_calls"}
    for slot in calls.values():
        assert slot["name"] == "get_weather" and slot["id"].startswith("call_")
        arguments = json.loads(slot["arguments"])
        assert set(arguments) == {"city", "days", "unit"}
        assert isinstance(arguments["city"], str) and 1 <= arguments["days"] <= 7
        assert arguments["unit"] == "celsius"
    assert usage is not None and usage.completion_tokens > 0

    named = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "What time is it?"}],
        tools=[WEATHER, CLOCK],
        tool_choice={"type": "function", "function": {"name": "get_time"}},
    )
    assert named.choices[0].message.tool_calls
    picked = named.choices[0].message.tool_calls[0]
    assert picked.type == "function"
    assert picked.function.name == "get_time" and json.loads(picked.function.arguments) == {}
    assert named.choices[0].message.content is None

    schema: dict[str, Any] = {
        "type": "object",
        "properties": {
            "title": {"type": "string"},
            "tags": {"type": "array", "items": {"type": "string"}},
            "score": {"type": "number"},
            "extra": {"type": "string"},
        },
        "required": ["title", "tags", "score"],
    }
    formatted = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "A review, as JSON"}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "review", "schema": schema},
        },
        logprobs=True,
        top_logprobs=2,
    )
    value = json.loads(formatted.choices[0].message.content or "")
    assert set(value) == {"title", "tags", "score"} and isinstance(value["tags"], list)
    assert formatted.choices[0].logprobs and formatted.choices[0].logprobs.content
    anything = client.chat.completions.create(
        model=MODEL,
        messages=[{"role": "user", "content": "Any JSON"}],
        response_format={"type": "json_object"},
    )
    assert isinstance(json.loads(anything.choices[0].message.content or ""), dict)


def test_tool_choice_auto_answers_text_unless_the_marker_says_tool(http: httpx.Client) -> None:
    auto = assemble(chat_chunks(http, chat("Weather?", tools=[WEATHER])))[0]
    assert auto["finish"] == "stop" and auto["content"] and not auto["tools"]
    marked = assemble(chat_chunks(http, chat("Weather? " + marker(tool=1), tools=[WEATHER])))[0]
    assert marked["finish"] == "tool_calls" and marked["content"] == ""
    assert marked["tools"][0]["name"] == "get_weather"
    assert set(json.loads(marked["tools"][0]["arguments"])) == {"city", "days", "unit"}
    none = assemble(
        chat_chunks(http, chat("Weather? " + marker(tool=1), tools=[WEATHER], tool_choice="none"))
    )[0]
    assert none["finish"] == "stop" and not none["tools"]


def test_max_tokens_stop_seed_and_temperature(http: httpx.Client) -> None:
    def whole(**fields: Any) -> dict[str, Any]:
        response = http.post("/chat/completions", json=chat("Tell me a story", **fields))
        assert response.status_code == 200, response.text
        return ChatCompletion.model_validate(response.json()).model_dump()

    full = whole()
    text = full["choices"][0]["message"]["content"]
    again = whole()
    assert again["choices"] == full["choices"] and again["id"] != full["id"]
    for field in ("max_tokens", "max_completion_tokens"):
        cut = whole(**{field: 5})
        assert cut["choices"][0]["finish_reason"] == "length"
        assert len(cut["choices"][0]["message"]["content"].split()) == 5
        assert text.startswith(cut["choices"][0]["message"]["content"])
        assert cut["usage"]["completion_tokens"] == 5
    words = text.split()
    stop_at = " " + words[6]
    stopped = whole(stop=[stop_at, "never there"])
    stopped_text = stopped["choices"][0]["message"]["content"]
    assert stopped["choices"][0]["finish_reason"] == "stop"
    assert stopped_text == text[: text.index(stop_at)] and stop_at not in stopped_text
    assert whole(stop=words[3])["choices"][0]["message"]["content"] == text[: text.index(words[3])]
    assert whole(seed=7)["choices"][0]["message"]["content"] not in (text, None)
    assert whole(seed=7)["choices"] == whole(seed=7)["choices"]
    assert whole(temperature=0.1)["choices"][0]["message"]["content"] != text
    assert whole(model="llama-3.1-8b-instruct")["choices"][0]["message"]["content"] != text


def test_every_message_shape_is_accepted_and_counted(http: httpx.Client) -> None:
    messages = [
        {"role": "system", "content": "You are terse."},
        {"role": "developer", "content": [{"type": "text", "text": "Be kind"}]},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "Describe this picture please"},
                {
                    "type": "image_url",
                    "image_url": {"url": "data:image/png;base64,AAAA", "detail": "low"},
                },
                {"type": "input_audio", "input_audio": {"data": "AAAA", "format": "wav"}},
                {
                    "type": "file",
                    "file": {"file_data": "data:application/pdf;base64,AAAA", "filename": "a.pdf"},
                },
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "lookup", "arguments": '{"q": "x"}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "result text"},
        {"role": "assistant", "content": [{"type": "refusal", "refusal": "No."}]},
        {"role": "user", "content": "Thanks", "name": "ann"},
    ]
    body = {
        "model": MODEL,
        "messages": messages,
        "frequency_penalty": 0.5,
        "some_future_field": {"x": 1},
    }
    response = http.post("/chat/completions", json=body)
    assert response.status_code == 200, response.text
    usage = ChatCompletion.model_validate(response.json()).usage
    assert usage is not None
    # Priming 3; 7 messages of 4; words 3+2+4+1+2+2+1+1+1; three non-text parts of 85.
    assert usage.prompt_tokens == 3 + 7 * 4 + (3 + 2 + 4 + 1 + 2 + 2 + 1 + 1 + 1) + 3 * 85


BAD_CHAT: list[tuple[object, str]] = [
    ({"messages": [{"role": "user", "content": "x"}]}, "model"),
    (chat(model=5), "model"),
    ({"model": MODEL}, "messages"),
    (chat(messages="hi"), "messages"),
    (chat(messages=[]), "messages"),
    (chat(messages=["hi"]), "messages[0]"),
    (chat(messages=[{"role": "bot", "content": "x"}]), "messages[0].role"),
    (chat(messages=[{"content": "x"}]), "messages[0].role"),
    (chat(messages=[{"role": "user"}]), "messages[0].content"),
    (chat(messages=[{"role": "user", "content": 5}]), "messages[0].content"),
    (chat(messages=[{"role": "assistant", "content": None}]), "messages[0].content"),
    (chat(messages=[{"role": "tool", "content": "x"}]), "messages[0].tool_call_id"),
    (
        chat(messages=[{"role": "user", "content": [{"type": "video"}]}]),
        "messages[0].content[0].type",
    ),
    (
        chat(messages=[{"role": "user", "content": [{"type": "text"}]}]),
        "messages[0].content[0].text",
    ),
    (
        chat(messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}]),
        "messages[0].content[0].image_url.url",
    ),
    (
        chat(
            messages=[
                {"role": "system", "content": [{"type": "image_url", "image_url": {"url": "u"}}]}
            ]
        ),
        "messages[0].content[0].type",
    ),
    (chat(n=0), "n"),
    (chat(n="2"), "n"),
    (chat(n=True), "n"),
    (chat(max_tokens=0), "max_tokens"),
    (chat(max_completion_tokens="many"), "max_completion_tokens"),
    (chat(stop=5), "stop"),
    (chat(stop=["a", "b", "c", "d", "e"]), "stop"),
    (chat(temperature=3), "temperature"),
    (chat(seed="x"), "seed"),
    (chat(top_logprobs=2), "top_logprobs"),
    (chat(response_format="json"), "response_format"),
    (chat(response_format={"type": "xml"}), "response_format.type"),
    (chat(response_format={"type": "json_schema"}), "response_format.json_schema"),
    (
        chat(response_format={"type": "json_schema", "json_schema": {}}),
        "response_format.json_schema.name",
    ),
    (chat(tools=[{"type": "function"}]), "tools[0].function"),
    (chat(tools=[{"type": "function", "function": {}}]), "tools[0].function.name"),
    (chat(tool_choice="required"), "tool_choice"),
    (chat(tools=[WEATHER], tool_choice="sometimes"), "tool_choice"),
    (
        chat(tools=[WEATHER], tool_choice={"type": "function", "function": {"name": "nope"}}),
        "tool_choice.function.name",
    ),
    (chat(stream_options={"include_usage": True}), "stream_options"),
    (chat("hi " + "[[emulator chunks=many]]"), "emulator.chunks"),
    (chat("hi " + "[[emulator sse=fancy]]"), "emulator.sse"),
]
BAD_OTHERS: list[tuple[str, object, str]] = [
    ("/completions", {"model": MODEL}, "prompt"),
    ("/completions", {"model": MODEL, "prompt": [True]}, "prompt[0]"),
    ("/completions", {"model": MODEL, "prompt": "x", "logprobs": 9}, "logprobs"),
    ("/embeddings", {"model": MODEL}, "input"),
    ("/embeddings", {"model": MODEL, "input": ""}, "input"),
    ("/embeddings", {"model": MODEL, "input": ["a", 5]}, "input[1]"),
    ("/embeddings", {"model": MODEL, "input": "a", "dimensions": 0}, "dimensions"),
    ("/embeddings", {"model": MODEL, "input": "a", "encoding_format": "hex"}, "encoding_format"),
    ("/responses", {"model": MODEL}, "input"),
    ("/responses", {"model": MODEL, "input": 5}, "input"),
    ("/responses", {"model": MODEL, "input": [{"role": "bot", "content": "x"}]}, "input[0].role"),
    ("/responses", {"model": MODEL, "input": [{"type": "mystery"}]}, "input[0].type"),
    ("/responses", {"model": MODEL, "input": "x", "max_output_tokens": 5}, "max_output_tokens"),
    (
        "/responses",
        {"model": MODEL, "input": "x", "text": {"format": {"type": "yaml"}}},
        "text.format.type",
    ),
]


@pytest.mark.parametrize(
    ("path", "payload", "param"),
    [("/chat/completions", p, param) for p, param in BAD_CHAT] + BAD_OTHERS,
)
def test_validation_names_the_field(
    http: httpx.Client, path: str, payload: dict[str, Any], param: str
) -> None:
    response = http.post(path, json=payload)
    assert response.status_code == 400, response.text
    assert response.headers["x-aivbatch-emulator"] == "aivbatch"
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error"
    assert error["param"] == param and error["message"]
    assert "code" in error


def test_unparseable_body_unknown_model_path_and_method(
    http: httpx.Client, client: openai.OpenAI
) -> None:
    for raw in (b'{"model": ', b"[1, 2]", b"\xff\xfe{}"):
        response = http.post("/chat/completions", content=raw)
        assert response.status_code == 400 and response.json()["error"]["message"]
    for path, body in [
        ("/chat/completions", chat(model="gpt-5")),
        ("/completions", {"model": "gpt-5", "prompt": "x"}),
        ("/embeddings", {"model": "gpt-5", "input": "x"}),
        ("/responses", {"model": "gpt-5", "input": "x"}),
    ]:
        response = http.post(path, json=body)
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "model_not_found"
        assert response.json()["error"]["param"] == "model"
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="gpt-5", messages=[{"role": "user", "content": "x"}])
    assert caught.value.code == "model_not_found"
    assert http.post("/nothing", json={}).status_code == 404
    wrong = http.get("/chat/completions")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    big = http.post("/chat/completions", json=chat("x" * (1 << 20)))
    assert big.status_code == 413


def test_completions_stream_and_whole(http: httpx.Client, client: openai.OpenAI) -> None:
    body = {
        "model": "qwen2.5-7b",
        "prompt": ["Once upon a time", "Far away"],
        "n": 2,
        "max_tokens": 12,
    }
    events = sse(
        http, "/completions", body | {"stream": True, "stream_options": {"include_usage": True}}
    )
    assert events[-1] == ("message", "[DONE]")
    chunks = [json.loads(data) for _, data in events[:-1]]
    texts: dict[int, str] = {}
    finish: dict[int, str] = {}
    for chunk in chunks[:-1]:
        choice = chunk["choices"][0]
        texts[choice["index"]] = texts.get(choice["index"], "") + choice["text"]
        if choice["finish_reason"] is None:
            # The API streams null until the last chunk (the openai package builds stream
            # chunks without validating); the type declares the field required.
            choice = choice | {"finish_reason": "stop"}
        else:
            finish[choice["index"]] = choice["finish_reason"]
        Completion.model_validate(chunk | {"choices": [choice]})
    Completion.model_validate(chunks[-1])
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 4 * 12
    assert finish == dict.fromkeys(range(4), "length")
    assert all(len(t.split()) == 12 for t in texts.values())
    whole = Completion.model_validate(http.post("/completions", json=body).json())
    assert {c.index: c.text for c in whole.choices} == texts
    # Legacy defaults: max_tokens 16; echo puts the prompt first; logprobs in the legacy shape.
    default = client.completions.create(model="qwen2.5-7b", prompt="Tell me", echo=True, logprobs=2)
    choice = default.choices[0]
    assert choice.text.startswith("Tell me") and len(choice.text.split()) == 2 + 16
    assert choice.finish_reason == "length"
    assert choice.logprobs and choice.logprobs.tokens and len(choice.logprobs.tokens) == 16
    assert choice.logprobs.text_offset and choice.logprobs.text_offset[0] == len("Tell me")
    streamed = client.completions.create(
        model="qwen2.5-7b", prompt="Tell me", max_tokens=30, stream=True
    )
    assert len("".join(c.choices[0].text for c in streamed if c.choices).split()) == 30


def test_embeddings_are_deterministic_unit_vectors(
    http: httpx.Client, client: openai.OpenAI
) -> None:
    body = {
        "model": "text-embedding-3-small",
        "input": ["one two three", [1, 2, 3, 4]],
        "dimensions": 64,
    }
    raw = http.post("/embeddings", json=body)
    result = CreateEmbeddingResponse.model_validate(raw.json())
    assert [d.index for d in result.data] == [0, 1]
    assert all(len(d.embedding) == 64 for d in result.data)
    assert all(
        math.isclose(sum(v * v for v in d.embedding), 1.0, rel_tol=1e-9) for d in result.data
    )
    assert result.data[0].embedding != result.data[1].embedding
    assert result.usage.prompt_tokens == result.usage.total_tokens == 3 + 4
    again = http.post("/embeddings", json=body).json()
    assert again["data"] == raw.json()["data"]
    default = client.embeddings.create(model="text-embedding-3-small", input="one two three")
    assert len(default.data[0].embedding) == 1536
    packed = http.post("/embeddings", json=body | {"encoding_format": "base64"}).json()
    floats = struct.unpack("<64f", base64.b64decode(packed["data"][0]["embedding"]))
    assert all(
        math.isclose(a, b, rel_tol=1e-6)
        for a, b in zip(floats, result.data[0].embedding, strict=True)
    )
    # The openai package asks for base64 and decodes it itself.
    decoded = client.embeddings.create(
        model="text-embedding-3-small", input="one two three", dimensions=64
    )
    assert all(
        math.isclose(a, b, rel_tol=1e-6)
        for a, b in zip(decoded.data[0].embedding, result.data[0].embedding, strict=True)
    )


def response_events(http: httpx.Client, body: dict[str, Any]) -> list[dict[str, Any]]:
    """A streamed response's events, each validated; names match types, numbers count up."""
    events = sse(http, "/responses", body | {"stream": True})
    parsed = []
    for number, (name, data) in enumerate(events):
        value = json.loads(data)
        EVENT.validate_python(value)
        assert value["type"] == name and value["sequence_number"] == number
        parsed.append(value)
    return parsed


def test_responses_stream_events_and_whole(http: httpx.Client, client: openai.OpenAI) -> None:
    body = {
        "model": MODEL,
        "instructions": "Answer in prose.",
        "input": [
            {"role": "user", "content": [{"type": "input_text", "text": "Tell me about gardens"}]},
            {
                "type": "message",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Sure."}],
            },
            {"role": "user", "content": "Go on"},
        ],
        "metadata": {"job": "7"},
    }
    events = response_events(http, body)
    names = [e["type"] for e in events]
    assert names[:4] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
    ]
    assert names[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = [e["delta"] for e in events if e["type"] == "response.output_text.delta"]
    assert len(deltas) == 20
    final = Response.model_validate(events[-1]["response"])
    assert final.status == "completed" and final.output_text == "".join(deltas)
    assert final.metadata == {"job": "7"} and final.instructions == "Answer in prose."
    assert final.usage is not None
    assert final.usage.output_tokens == len(final.output_text.split())
    assert final.usage.input_tokens == 3 + 4 * 4 + 3 + 4 + 1 + 2
    assert final.usage.total_tokens == final.usage.input_tokens + final.usage.output_tokens
    whole = Response.model_validate(http.post("/responses", json=body).json())
    assert whole.output_text == final.output_text
    cut = Response.model_validate(
        http.post("/responses", json=body | {"max_output_tokens": 16}).json()
    )
    assert cut.status == "incomplete" and cut.incomplete_details is not None
    assert len(cut.output_text.split()) == 16

    with client.responses.create(model=MODEL, input="Hello there", stream=True) as stream:
        kinds = [event.type for event in stream]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    schema: dict[str, object] = {
        "type": "object",
        "properties": {"name": {"type": "string"}},
        "required": ["name"],
    }
    formatted = client.responses.create(
        model=MODEL,
        input="JSON please",
        text={"format": {"type": "json_schema", "name": "n", "schema": schema}},
    )
    assert set(json.loads(formatted.output_text)) == {"name"}


def test_responses_tool_call(http: httpx.Client) -> None:
    tool = {
        "type": "function",
        "name": "get_weather",
        "parameters": WEATHER["function"]["parameters"],
    }
    events = response_events(
        http, {"model": MODEL, "input": "Weather?", "tools": [tool], "tool_choice": "required"}
    )
    arguments = "".join(
        e["delta"] for e in events if e["type"] == "response.function_call_arguments.delta"
    )
    final = Response.model_validate(events[-1]["response"])
    item = final.output[0]
    assert item.type == "function_call" and item.name == "get_weather"
    assert item.arguments == arguments and set(json.loads(arguments)) == {"city", "days", "unit"}


def test_markers_set_pacing_and_usage_details(http: httpx.Client) -> None:
    content = "Hi " + marker(chunks=3, chunk_size=60, cached_tokens=4, reasoning_tokens=9)
    chunks = chat_chunks(http, chat(content, stream_options={"include_usage": True}))
    pieces = [c for c in chunks if c["choices"] and c["choices"][0]["delta"].get("content")]
    assert len(pieces) == 3
    usage = chunks[-1]["usage"]
    words = len("".join(c["choices"][0]["delta"]["content"] for c in pieces).split())
    assert usage["prompt_tokens_details"]["cached_tokens"] == 4
    assert usage["completion_tokens_details"]["reasoning_tokens"] == 9
    assert usage["completion_tokens"] == words + 9
    cyrillic = assemble(chat_chunks(http, chat("Привет! Как дела?")))[0]["content"]
    letters = [ch for ch in cyrillic if ch.isalpha()]
    assert letters and all("\u0400" <= ch <= "\u04ff" for ch in letters)
