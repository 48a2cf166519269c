"""``POST /v1/chat/completions``: the request, its chunks and its whole ``chat.completion``.

Streamed, per choice: a first chunk with ``role: "assistant"`` (and for a tool call the
call's ``id``, ``type`` and ``function.name``), one chunk per piece of the answer
(``content``, or ``tool_calls[0].function.arguments``), a chunk with ``finish_reason``;
then with ``stream_options.include_usage`` a chunk with ``choices: []`` and ``usage``; then
``data: [DONE]``. Choices stream side by side, each chunk tagged by its ``index``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import Any

from emulator.faults import strip_markers
from emulator.openai import calls, fields
from emulator.openai.answer import Answer, Shape, answer
from emulator.openai.calls import Call
from emulator.openai.errors import OpenAIError
from emulator.openai.messages import parse_messages
from emulator.openai.sse import DONE, Event
from emulator.text import is_cyrillic

FINGERPRINT = "fp_aivbatch_emulator"


def parse_chat(data: Any, served: tuple[str, ...]) -> Call:
    """Validate a chat completions body; OpenAIError naming the field."""
    data = fields.body_object(data)
    model = fields.model(data)
    prompt = parse_messages(data)
    n = fields.integer(data, "n", 1, 128, default=1)
    max_tokens = fields.integer(data, "max_completion_tokens", 1, 1 << 30)
    if max_tokens is None:
        max_tokens = fields.integer(data, "max_tokens", 1, 1 << 30)
    stop = fields.stop(data)
    logprobs = fields.boolean(data, "logprobs")
    top = fields.integer(data, "top_logprobs", 0, 20)
    if top is not None and not logprobs:
        raise OpenAIError(
            "Invalid value for 'top_logprobs': logprobs must be set to true.",
            "top_logprobs",
            "invalid_value",
        )
    output = calls.output_format(data.get("response_format"), "response_format", nested=True)
    tools = calls.function_tools(data.get("tools"), nested=True)
    overrides = calls.markers(prompt.texts)
    tool = calls.tool_called(data.get("tool_choice"), tools, overrides, nested=True)
    stream = fields.boolean(data, "stream")
    include_usage = fields.stream_options(data, stream)
    sampling = calls.sampling(data)
    fields.served(model, served)
    shape = Shape(
        cyrillic=is_cyrillic(strip_markers(prompt.last_user)),
        max_tokens=max_tokens,
        stop=stop,
        top_logprobs=(top or 0) if logprobs else None,
        json_schema=output if tool is None else None,
        tool_name=tool,
        tool_parameters=tools[tool] if tool else "{}",
    )
    material = ["chat", model, prompt.material, sampling, shape.json_schema, tool, shape.cyrillic]
    return Call(
        kind="chat",
        model=model,
        stream=stream,
        include_usage=include_usage,
        seeds=calls.seeds(material, n or 1),
        shape=shape,
        prompt_tokens=prompt.tokens,
        overrides=overrides,
        fingerprint=calls.fingerprint("chat", data),
        request=data,
    )


def _dump(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _logprobs(ans: Answer, piece: int) -> Any:
    if ans.logprobs is None:
        return None
    return {"content": list(ans.logprobs[piece]), "refusal": None}


@lru_cache(maxsize=4096)
def _fragments(
    seed: int, shape: Shape, chunks: int, size: int, index: int
) -> tuple[bytes, tuple[bytes, ...], bytes]:
    """One choice's chunk ``choices`` entries: first, one per piece, the finishing one."""
    ans = answer(seed, shape, chunks, size)
    delta: dict[str, Any] = {"role": "assistant", "content": "", "refusal": None}
    if ans.tool_call_id is not None:
        function = {"name": shape.tool_name, "arguments": ""}
        call = {"index": 0, "id": ans.tool_call_id, "type": "function", "function": function}
        delta = {"role": "assistant", "content": None, "tool_calls": [call]}

    def entry(delta: dict[str, Any], logprobs: Any = None, finish: str | None = None) -> bytes:
        choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish}
        return _dump(choice)

    if ans.tool_call_id is not None:
        pieces = tuple(
            entry({"tool_calls": [{"index": 0, "function": {"arguments": p}}]}) for p in ans.pieces
        )
    else:
        pieces = tuple(entry({"content": p}, _logprobs(ans, i)) for i, p in enumerate(ans.pieces))
    return entry(delta), pieces, entry({}, None, ans.finish_reason)


def stream_events(
    call: Call, ident: str, created: int, chunks: int, size: int
) -> list[list[Event]]:
    """The stream's events, grouped by network write."""
    head = (
        b'{"id":"'
        + ident.encode()
        + b'","object":"chat.completion.chunk","created":'
        + str(created).encode()
        + b',"model":'
        + _dump(call.model)
        + b',"system_fingerprint":"'
        + FINGERPRINT.encode()
        + b'","choices":['
    )
    per_choice = [
        _fragments(seed, call.shape, chunks, size, i) for i, seed in enumerate(call.seeds)
    ]
    count = max(1, *(len(pieces) for _, pieces, _ in per_choice))
    writes: list[list[Event]] = [[] for _ in range(count)]
    for first, pieces, finish in per_choice:
        writes[0].append((None, head + first + b"]}"))
        for i, piece in enumerate(pieces):
            writes[i].append((None, head + piece + b"]}"))
        writes[max(len(pieces), 1) - 1].append((None, head + finish + b"]}"))
    if call.include_usage:
        writes[-1].append((None, head + b'],"usage":' + _dump(_usage(call, chunks, size)) + b"}"))
    writes[-1].append(DONE)
    return writes


def _usage(call: Call, chunks: int, size: int) -> dict[str, Any]:
    tokens = sum(answer(seed, call.shape, chunks, size).tokens for seed in call.seeds)
    return calls.usage(call.prompt_tokens, tokens, call.overrides)


def whole(call: Call, ident: str, created: int, chunks: int, size: int) -> dict[str, Any]:
    """The whole ``chat.completion`` object."""
    choices = []
    for i, seed in enumerate(call.seeds):
        ans = answer(seed, call.shape, chunks, size)
        message: dict[str, Any] = {
            "role": "assistant",
            "content": ans.text,
            "refusal": None,
            "annotations": [],
        }
        logprobs = None
        if ans.tool_call_id is not None:
            function = {"name": call.shape.tool_name, "arguments": ans.text}
            message["content"] = None
            message["tool_calls"] = [
                {"id": ans.tool_call_id, "type": "function", "function": function}
            ]
        elif ans.logprobs is not None:
            logprobs = {"content": ans.entries, "refusal": None}
        choices.append(
            {
                "index": i,
                "message": message,
                "logprobs": logprobs,
                "finish_reason": ans.finish_reason,
            }
        )
    return {
        "id": ident,
        "object": "chat.completion",
        "created": created,
        "model": call.model,
        "system_fingerprint": FINGERPRINT,
        "service_tier": "default",
        "choices": choices,
        "usage": _usage(call, chunks, size),
    }
