"""The OpenAI-compatible provider at the byte level, against ``httpx.MockTransport``.

Server-sent events as real servers write them (CRLF, comments, multi-line fields, events
and UTF-8 characters cut across reads), what is sent (every body field passed through),
how tool calls and ``n`` choices are assembled, what each status code means, and that an
echoed key never gets out. Against the emulator over HTTP: test_upstreams_stack.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import openai
import pytest

from worker.providers.errors import (
    NotAnAnswer,
    RateLimited,
    StreamInterrupted,
    StreamStalled,
    UpstreamError,
    UpstreamRefused,
    UpstreamUnavailable,
)
from worker.providers.interface import Final, Item, Request, TextDelta, ToolCallDelta
from worker.providers.openai import OpenAIProvider

KEY = "sk-UNMISTAKABLE-upstream-key-7f3a"
CHAT = "/v1/chat/completions"

Handler = Callable[[httpx.Request], httpx.Response]


def chunk(
    delta: dict[str, Any] | None = None,
    *,
    index: int = 0,
    finish: str | None = None,
    usage: dict[str, Any] | None = None,
    logprobs: Any = None,
) -> dict[str, Any]:
    """One ``chat.completion.chunk``."""
    choices = (
        []
        if delta is None
        else [{"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}]
    )
    event: dict[str, Any] = {
        "id": "chatcmpl-abc",
        "object": "chat.completion.chunk",
        "created": 1764040000,
        "model": "qwen2.5-7b",
        "system_fingerprint": "fp_1",
        "choices": choices,
    }
    if usage is not None:
        event["usage"] = usage
    return event


def sse(*events: dict[str, Any] | str, newline: str = "\n") -> bytes:
    """Events framed as ``data:`` lines, ``[DONE]`` for a string."""
    out = ""
    for event in events:
        data = event if isinstance(event, str) else json.dumps(event, ensure_ascii=False)
        out += f"data: {data}{newline}{newline}"
    return out.encode()


async def _pieces(parts: list[bytes], pause: float = 0) -> AsyncIterator[bytes]:
    for part in parts:
        if pause:
            await asyncio.sleep(pause)
        yield part


def stream_response(
    parts: list[bytes], *, status: int = 200, headers: dict[str, str] | None = None
) -> httpx.Response:
    """A response whose body arrives in exactly these reads."""
    head = {"content-type": "text/event-stream", **(headers or {})}
    return httpx.Response(status, headers=head, content=_pieces(parts))


def run(
    handler: Handler,
    request: Request | None = None,
    *,
    key: str = KEY,
    stall: float = 5,
) -> tuple[list[Item], list[httpx.Request]]:
    """Every item the provider yields, and every request it sent."""
    seen: list[httpx.Request] = []

    def record(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return handler(req)

    async def main() -> list[Item]:
        transport = httpx.MockTransport(record)
        timeout = httpx.Timeout(5, read=stall)
        async with httpx.AsyncClient(transport=transport, timeout=timeout) as client:
            provider = OpenAIProvider("local", base_url="http://upstream.test/v1", api_key=key)
            req = request or Request(CHAT, "qwen2.5-7b", [{"role": "user", "content": "Hi"}])
            return [item async for item in provider.stream(req, client)]

    return asyncio.run(main()), seen


def text_of(items: list[Item], choice: int = 0) -> str:
    return "".join(i.text for i in items if isinstance(i, TextDelta) and i.choice == choice)


def final_of(items: list[Item]) -> Final:
    assert isinstance(items[-1], Final)
    assert sum(isinstance(i, Final) for i in items) == 1
    return items[-1]


USAGE = {
    "prompt_tokens": 11,
    "completion_tokens": 7,
    "total_tokens": 18,
    "prompt_tokens_details": {"cached_tokens": 4},
    "completion_tokens_details": {"reasoning_tokens": 2},
}


def test_the_request_passes_every_body_field_through() -> None:
    params = {
        "max_tokens": 50,
        "max_completion_tokens": 60,
        "top_p": 0.9,
        "stop": ["\n\n"],
        "seed": 7,
        "presence_penalty": 0.1,
        "frequency_penalty": 0.2,
        "logit_bias": {"50256": -100},
        "user": "u-1",
        "response_format": {"type": "json_object"},
        "tools": [{"type": "function", "function": {"name": "f", "parameters": {}}}],
        "tool_choice": "auto",
        "parallel_tool_calls": False,
        "n": 2,
        "logprobs": True,
        "top_logprobs": 2,
        "some_vendor_field": {"x": 1},
        "stream": False,
        "stream_options": {"include_usage": False},
    }
    messages: list[dict[str, Any]] = [
        {"role": "developer", "content": "Be brief."},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "What is this?"},
                {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}},
            ],
        },
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"id": "call_1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
            ],
        },
        {"role": "tool", "tool_call_id": "call_1", "content": "42"},
    ]
    request = Request(CHAT, "qwen2.5-7b", messages, params, temperature=0.2, system_message="S")
    items, sent = run(
        lambda _r: stream_response([sse(chunk({"content": "ok"}, finish="stop"), "[DONE]")]),
        request,
    )
    assert text_of(items) == "ok"
    assert len(sent) == 1
    assert (sent[0].method, str(sent[0].url)) == (
        "POST",
        "http://upstream.test/v1/chat/completions",
    )
    assert sent[0].headers["authorization"] == f"Bearer {KEY}"
    assert sent[0].headers["accept"] == "text/event-stream"
    body = json.loads(sent[0].content)
    expected = {k: v for k, v in params.items() if k not in ("stream", "stream_options")}
    assert {k: body[k] for k in expected} == expected
    assert body["model"] == "qwen2.5-7b" and body["temperature"] == 0.2
    assert body["messages"] == [{"role": "system", "content": "S"}, *messages]
    assert (body["stream"], body["stream_options"]) == (True, {"include_usage": True})


SPLIT_CASES = {
    "lf": lambda b: [b],
    "crlf": lambda b: [b.replace(b"\n", b"\r\n")],
    "byte by byte": lambda b: [b[i : i + 1] for i in range(len(b))],
    "every 7 bytes": lambda b: [b[i : i + 7] for i in range(0, len(b), 7)],
}


@pytest.mark.parametrize("split", list(SPLIT_CASES))
def test_events_cut_anywhere_give_the_same_answer(split: str) -> None:
    # Cyrillic and an emoji: multi-byte characters that the cuts fall inside of.
    pieces = ["Привет", "! Как ", "дела? 🙂", " Хорошо."]
    body = sse(
        chunk({"role": "assistant", "content": ""}),
        *[chunk({"content": p}) for p in pieces],
        chunk({}, finish="stop"),
        chunk(usage=USAGE),
        "[DONE]",
    )
    parts = SPLIT_CASES[split](body)
    items, _ = run(lambda _r: stream_response(parts))
    assert text_of(items) == "".join(pieces)
    final = final_of(items)
    assert final.usage.input_tokens == 11 and final.usage.output_tokens == 7
    assert (final.usage.cached_tokens, final.usage.reasoning_tokens) == (4, 2)
    assert final.body is not None
    completion = openai.types.chat.ChatCompletion.model_validate(final.body)
    assert completion.choices[0].message.content == "".join(pieces)
    assert completion.choices[0].finish_reason == "stop"
    assert (completion.id, completion.model) == ("chatcmpl-abc", "qwen2.5-7b")
    assert completion.usage is not None and completion.usage.total_tokens == 18


def test_comments_multiline_data_and_event_names_are_read_as_sse_says() -> None:
    first = json.dumps(chunk({"content": "one "}))
    # A JSON object split over two data: lines is one event whose lines join with "\n"
    # (split between two members, where a newline is JSON whitespace).
    half = first.index(', "choices"') + 1
    body = (
        ": keep-alive\n\n"
        f"event: message\nid: 1\ndata: {first[:half]}\ndata: {first[half:]}\n\n"
        ": another comment\r\n"
        f"retry: 1000\ndata: {json.dumps(chunk({'content': 'two'}, finish='stop'))}\n\n"
        "data: [DONE]\n\n"
    ).encode()
    items, _ = run(lambda _r: stream_response([body]))
    assert text_of(items) == "one two"
    assert final_of(items).finish_reason == "stop"


def test_tool_call_pieces_are_assembled_into_whole_calls() -> None:
    calls = [
        {
            "index": 0,
            "id": "call_a",
            "type": "function",
            "function": {"name": "get_weather", "arguments": ""},
        },
        {"index": 0, "function": {"arguments": '{"city": '}},
        {
            "index": 1,
            "id": "call_b",
            "type": "function",
            "function": {"name": "get_time", "arguments": "{}"},
        },
        {"index": 0, "function": {"arguments": '"Oslo"}'}},
    ]
    body = sse(
        *[chunk({"tool_calls": [c]}) for c in calls],
        chunk({}, finish="tool_calls"),
        "[DONE]",
    )
    items, _ = run(lambda _r: stream_response([body]))
    final = final_of(items)
    assert final.finish_reason == "tool_calls"
    assert final.tool_calls == [
        {
            "id": "call_a",
            "type": "function",
            "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
        },
        {"id": "call_b", "type": "function", "function": {"name": "get_time", "arguments": "{}"}},
    ]
    completion = openai.types.chat.ChatCompletion.model_validate(final.body)
    message = completion.choices[0].message
    assert message.content is None and message.tool_calls is not None
    assert [c.function.name for c in message.tool_calls] == ["get_weather", "get_time"]  # type: ignore[union-attr]
    deltas = [i for i in items if isinstance(i, ToolCallDelta)]
    assert [(d.index, d.id, d.name) for d in deltas if d.id] == [
        (0, "call_a", "get_weather"),
        (1, "call_b", "get_time"),
    ]
    assert "".join(d.arguments for d in deltas if d.index == 0) == '{"city": "Oslo"}'


def test_n_choices_and_logprobs_are_kept_by_index() -> None:
    def lp(token: str) -> dict[str, Any]:
        return {"content": [{"token": token, "logprob": -0.1, "bytes": None, "top_logprobs": []}]}

    body = sse(
        chunk({"content": "A1"}, index=0, logprobs=lp("A1")),
        chunk({"content": "B1"}, index=1, logprobs=lp("B1")),
        chunk({"content": "A2"}, index=0, logprobs=lp("A2")),
        chunk({"content": "B2"}, index=1, finish="length", logprobs=lp("B2")),
        chunk({}, index=0, finish="stop"),
        chunk(usage=USAGE),
        "[DONE]",
    )
    items, _ = run(lambda _r: stream_response([body]))
    assert (text_of(items, 0), text_of(items, 1)) == ("A1A2", "B1B2")
    completion = openai.types.chat.ChatCompletion.model_validate(final_of(items).body)
    assert [c.index for c in completion.choices] == [0, 1]
    assert [c.message.content for c in completion.choices] == ["A1A2", "B1B2"]
    assert [c.finish_reason for c in completion.choices] == ["stop", "length"]
    first = completion.choices[0].logprobs
    assert first is not None and [t.token for t in first.content or []] == ["A1", "A2"]


REFUSALS = [400, 401, 403, 404, 413, 422]


@pytest.mark.parametrize("status", REFUSALS)
def test_refusals_fail_at_once_with_the_upstreams_words(status: int) -> None:
    error = {
        "error": {
            "message": f"bad key {KEY} or model",
            "type": "invalid_request_error",
            "param": "model",
            "code": "x",
        }
    }
    with pytest.raises(UpstreamRefused) as caught:
        run(lambda _r: httpx.Response(status, json=error))
    exc = caught.value
    assert not exc.retryable and exc.status_code == status
    assert str(exc) == f"{status}: bad key *** or model"
    assert exc.body == {"error": {**error["error"], "message": "bad key *** or model"}}


@pytest.mark.parametrize(
    ("status", "headers", "wait"),
    [
        (429, {"retry-after": "2"}, 2.0),
        (429, {"retry-after-ms": "1500", "retry-after": "9"}, 1.5),
        (429, {}, None),
    ],
)
def test_rate_limits_carry_how_long_to_wait(
    status: int, headers: dict[str, str], wait: float | None
) -> None:
    with pytest.raises(RateLimited) as caught:
        run(
            lambda _r: httpx.Response(
                status, headers=headers, json={"error": {"message": "slow down"}}
            )
        )
    assert caught.value.retryable and caught.value.retry_after == wait
    assert str(caught.value) == "429: slow down"


@pytest.mark.parametrize("status", [408, 409, 500, 502, 503])
def test_timeouts_conflicts_and_faults_are_retried(status: int) -> None:
    with pytest.raises(UpstreamUnavailable) as caught:
        run(lambda _r: httpx.Response(status, text="upstream trouble"))
    assert caught.value.retryable and caught.value.status_code == status
    assert str(caught.value) == f"{status}: upstream trouble"


def test_an_html_page_served_with_200_is_not_an_answer() -> None:
    page = "<!doctype html><html><head><title>Attention Required!</title></head></html>"
    with pytest.raises(NotAnAnswer) as caught:
        run(lambda _r: httpx.Response(200, headers={"content-type": "text/html"}, text=page))
    assert "Attention Required!" in str(caught.value) and caught.value.retryable


def test_an_error_event_mid_stream_ends_the_attempt_with_its_message() -> None:
    body = sse(
        chunk({"content": "Partial "}),
        {"error": {"message": f"model overloaded ({KEY})", "type": "server_error"}},
    )
    with pytest.raises(StreamInterrupted) as caught:
        run(lambda _r: stream_response([body]))
    assert caught.value.retryable and caught.value.partial_text == "Partial "
    assert "model overloaded (***)" in str(caught.value) and KEY not in str(caught.value)


def test_an_invalid_request_error_event_is_a_refusal() -> None:
    body = sse({"error": {"message": "context too long", "type": "invalid_request_error"}})
    with pytest.raises(UpstreamRefused, match="context too long"):
        run(lambda _r: stream_response([body]))


def test_a_stream_cut_before_its_end_is_interrupted() -> None:
    body = sse(chunk({"content": "Half an ans"}))
    with pytest.raises(StreamInterrupted) as caught:
        run(lambda _r: stream_response([body]))
    assert caught.value.partial_text == "Half an ans" and caught.value.retryable


def test_a_transport_failure_before_the_answer_is_unavailable() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    with pytest.raises(UpstreamUnavailable, match="could not reach http://upstream.test"):
        run(refuse)


def test_a_read_timeout_mid_answer_is_a_stall_carrying_the_text() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        async def body() -> AsyncIterator[bytes]:
            yield sse(chunk({"content": "So far"}))
            raise httpx.ReadTimeout("timed out", request=request)

        return httpx.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    with pytest.raises(StreamStalled) as caught:
        run(handler, stall=3)
    assert caught.value.partial_text == "So far" and "3" in str(caught.value)


@pytest.mark.parametrize("cut", [3, 10, 17])
def test_an_echoed_key_is_masked_even_when_cut_across_chunks(cut: int) -> None:
    text = f"Your key is {KEY}, keep it safe."
    at = text.index(KEY) + cut
    body = sse(
        chunk({"content": text[:at]}),
        chunk({"content": text[at:]}),
        chunk(
            {
                "tool_calls": [
                    {"index": 0, "id": "c", "function": {"name": "f", "arguments": KEY[:cut]}}
                ]
            }
        ),
        chunk({"tool_calls": [{"index": 0, "function": {"arguments": KEY[cut:]}}]}),
        chunk({}, finish="stop"),
        "[DONE]",
    )
    items, _ = run(lambda _r: stream_response([body]))
    streamed = "".join(
        i.text if isinstance(i, TextDelta) else i.arguments
        for i in items
        if not isinstance(i, Final)
    )
    assert KEY not in streamed and KEY[:cut] not in streamed
    assert text_of(items) == "Your key is ***, keep it safe."
    final = final_of(items)
    assert KEY not in json.dumps(final.body) and KEY not in json.dumps(final.tool_calls)
    assert final.tool_calls[0]["function"]["arguments"] == "***"


def test_a_whole_json_answer_is_accepted_from_a_server_that_does_not_stream() -> None:
    whole = {
        "id": "chatcmpl-w",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": "Whole."},
                "finish_reason": "stop",
            }
        ],
        "usage": USAGE,
    }
    items, _ = run(lambda _r: httpx.Response(200, json=whole))
    assert text_of(items) == "Whole." and final_of(items).body == whole
    assert final_of(items).usage.input_tokens == 11


def test_embeddings_are_not_streamed_and_keep_their_usage() -> None:
    answer = {
        "object": "list",
        "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2]}],
        "model": "text-embedding-3-small",
        "usage": {"prompt_tokens": 3, "total_tokens": 3},
    }
    request = Request(
        "/v1/embeddings", "text-embedding-3-small", params={"input": "abc", "dimensions": 2}
    )
    items, sent = run(lambda _r: httpx.Response(200, json=answer), request)
    body = json.loads(sent[0].content)
    assert str(sent[0].url).endswith("/v1/embeddings")
    assert body == {"input": "abc", "dimensions": 2, "model": "text-embedding-3-small"}
    final = final_of(items)
    openai.types.CreateEmbeddingResponse.model_validate(final.body)
    assert final.usage.input_tokens == 3


def test_responses_events_give_the_final_response_object() -> None:
    response = {
        "id": "resp_1",
        "object": "response",
        "created_at": 1,
        "status": "completed",
        "model": "m",
        "output": [
            {
                "type": "message",
                "id": "msg_1",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": "Hello there", "annotations": []}],
            }
        ],
        "usage": {
            "input_tokens": 5,
            "input_tokens_details": {"cached_tokens": 1},
            "output_tokens": 2,
            "output_tokens_details": {"reasoning_tokens": 0},
            "total_tokens": 7,
        },
    }
    events = [
        (
            "response.created",
            {
                "type": "response.created",
                "response": {**response, "status": "in_progress", "output": []},
            },
        ),
        (
            "response.output_text.delta",
            {
                "type": "response.output_text.delta",
                "output_index": 0,
                "content_index": 0,
                "delta": "Hello ",
            },
        ),
        (
            "response.output_text.delta",
            {
                "type": "response.output_text.delta",
                "output_index": 0,
                "content_index": 0,
                "delta": "there",
            },
        ),
        ("response.completed", {"type": "response.completed", "response": response}),
    ]
    body = "".join(f"event: {name}\ndata: {json.dumps(data)}\n\n" for name, data in events).encode()
    request = Request("/v1/responses", "m", params={"input": "Hi", "instructions": "Be kind."})
    items, sent = run(lambda _r: stream_response([body]), request)
    assert json.loads(sent[0].content) == {
        "input": "Hi",
        "instructions": "Be kind.",
        "model": "m",
        "stream": True,
    }
    assert text_of(items) == "Hello there"
    final = final_of(items)
    assert final.body == response and final.usage.input_tokens == 5
    assert final.usage.cached_tokens == 1


def test_errors_are_in_the_provider_tree() -> None:
    for kind in (UpstreamRefused, RateLimited, UpstreamUnavailable, NotAnAnswer, StreamInterrupted):
        assert issubclass(kind, UpstreamError)
