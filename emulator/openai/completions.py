"""``POST /v1/completions`` (legacy text completions): the request, its chunks, the whole.

``prompt`` is a string, a list of strings, a token array or a list of token arrays; each
prompt gets ``n`` choices (index ``prompt * n + j``). As on OpenAI and vLLM, ``max_tokens``
defaults to 16. Prompt tokens: the words of each string prompt (markers not counted), the
length of each token array. ``echo`` puts the prompt before the text; ``logprobs: k``
gives the legacy ``{tokens, token_logprobs, top_logprobs, text_offset}`` for the
generated tokens.
"""

from __future__ import annotations

import json
from typing import Any

from emulator.faults import strip_markers
from emulator.openai import calls, fields
from emulator.openai.answer import Answer, Shape, answer
from emulator.openai.calls import Call
from emulator.openai.chat import FINGERPRINT
from emulator.openai.errors import OpenAIError, bad_type, missing
from emulator.openai.messages import words
from emulator.openai.sse import DONE, Event
from emulator.text import is_cyrillic

DEFAULT_MAX_TOKENS = 16


def _prompts(data: dict[str, Any]) -> list[tuple[str, int]]:
    """Each prompt's text and token count."""
    value = data.get("prompt")
    if value is None:
        raise missing("prompt")
    if isinstance(value, str):
        return [(value, words(value))]
    if not isinstance(value, list) or not value:
        raise OpenAIError(
            "Invalid 'prompt': expected a string, an array of strings, an array of tokens "
            "or an array of token arrays.",
            "prompt",
            "invalid_type",
        )
    if all(isinstance(t, int) and not isinstance(t, bool) for t in value):
        return [(" ".join(map(str, value)), len(value))]
    prompts = []
    for i, item in enumerate(value):
        if isinstance(item, str):
            prompts.append((item, words(item)))
        elif isinstance(item, list) and all(
            isinstance(t, int) and not isinstance(t, bool) for t in item
        ):
            prompts.append((" ".join(map(str, item)), len(item)))
        else:
            raise bad_type(f"prompt[{i}]", "string", item)
    return prompts


def parse_completion(data: Any, served: tuple[str, ...]) -> Call:
    """Validate a completions body; OpenAIError naming the field."""
    data = fields.body_object(data)
    model = fields.model(data)
    prompts = _prompts(data)
    n = fields.integer(data, "n", 1, 128, default=1) or 1
    best_of = fields.integer(data, "best_of", 1, 20)
    if best_of is not None and best_of < n:
        raise OpenAIError("best_of must be greater than or equal to n.", "best_of", "invalid_value")
    max_tokens = fields.integer(data, "max_tokens", 0, 1 << 30, default=DEFAULT_MAX_TOKENS)
    stop = fields.stop(data)
    logprobs = fields.integer(data, "logprobs", 0, 5)
    echo = fields.boolean(data, "echo")
    fields.string(data, "suffix")
    stream = fields.boolean(data, "stream")
    include_usage = fields.stream_options(data, stream)
    sampling = calls.sampling(data)
    overrides = calls.markers(text for text, _ in prompts)
    fields.served(model, served)
    shape = Shape(
        cyrillic=is_cyrillic(strip_markers(prompts[0][0])),
        max_tokens=max_tokens,
        stop=stop,
        top_logprobs=logprobs,
        lead=" ",
    )
    seeds: list[int] = []
    for text, _ in prompts:
        material = ["completion", model, strip_markers(text), sampling, shape.cyrillic]
        seeds += calls.seeds(material, n)
    return Call(
        kind="completion",
        model=model,
        stream=stream,
        include_usage=include_usage,
        seeds=tuple(seeds),
        shape=shape,
        prompt_tokens=sum(tokens for _, tokens in prompts),
        overrides=overrides,
        fingerprint=calls.fingerprint("completion", data),
        request=data,
        echo=tuple(text if echo else "" for text, _ in prompts for _ in range(n)),
        legacy_logprobs=logprobs is not None,
    )


def _legacy(entries: list[dict[str, Any]], offset: int) -> dict[str, Any]:
    offsets = []
    for entry in entries:
        offsets.append(offset)
        offset += len(entry["token"])
    return {
        "tokens": [e["token"] for e in entries],
        "token_logprobs": [e["logprob"] for e in entries],
        "top_logprobs": [{t["token"]: t["logprob"] for t in e["top_logprobs"]} for e in entries],
        "text_offset": offsets,
    }


def _choice(index: int, text: str, logprobs: Any, finish: str | None) -> dict[str, Any]:
    return {"index": index, "text": text, "logprobs": logprobs, "finish_reason": finish}


def _dump(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _answers(call: Call, chunks: int, size: int) -> list[Answer]:
    return [answer(seed, call.shape, chunks, size) for seed in call.seeds]


def _head(call: Call, ident: str, created: int) -> dict[str, Any]:
    return {
        "id": ident,
        "object": "text_completion",
        "created": created,
        "model": call.model,
        "system_fingerprint": FINGERPRINT,
    }


def stream_events(
    call: Call, ident: str, created: int, chunks: int, size: int
) -> list[list[Event]]:
    """The stream's events, grouped by network write."""
    head = _head(call, ident, created)
    answers = _answers(call, chunks, size)
    count = max(1, *(len(a.pieces) for a in answers))
    writes: list[list[Event]] = [[] for _ in range(count)]
    for index, ans in enumerate(answers):
        offset = len(call.echo[index])
        for i, piece in enumerate(ans.pieces):
            text = call.echo[index] + piece if i == 0 else piece
            logprobs = None
            if ans.logprobs is not None and call.legacy_logprobs:
                logprobs = _legacy(list(ans.logprobs[i]), offset)
            offset += len(piece)
            chunk = head | {"choices": [_choice(index, text, logprobs, None)]}
            writes[i].append((None, _dump(chunk)))
        text = call.echo[index] if not ans.pieces else ""
        finish = head | {"choices": [_choice(index, text, None, ans.finish_reason)]}
        writes[max(len(ans.pieces), 1) - 1].append((None, _dump(finish)))
    if call.include_usage:
        usage = _usage(call, answers)
        writes[-1].append((None, _dump(head | {"choices": [], "usage": usage})))
    writes[-1].append(DONE)
    return writes


def _usage(call: Call, answers: list[Answer]) -> dict[str, Any]:
    return calls.usage(call.prompt_tokens, sum(a.tokens for a in answers), call.overrides)


def whole(call: Call, ident: str, created: int, chunks: int, size: int) -> dict[str, Any]:
    """The whole ``text_completion`` object."""
    answers = _answers(call, chunks, size)
    choices = []
    for index, ans in enumerate(answers):
        logprobs = None
        if ans.logprobs is not None and call.legacy_logprobs:
            logprobs = _legacy(ans.entries, len(call.echo[index]))
        text = call.echo[index] + ans.text
        choices.append(_choice(index, text, logprobs, ans.finish_reason))
    return _head(call, ident, created) | {"choices": choices, "usage": _usage(call, answers)}
