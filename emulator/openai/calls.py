"""What the generating endpoints share: the validated call, its seeds, tools and formats.

A call's text depends on the endpoint, the model, the prompt (markers stripped, so a
marker that only changes framing or faults leaves the text alone), ``seed``,
``temperature``, ``top_p``, the output format and the tool called; choice ``i`` has its
own seed. ``n``, ``max_tokens``, ``stop``, ``logprobs`` and ``stream`` do not change the
text, only how much of it is sent and how.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from emulator.faults import MarkerError, Overrides, parse_markers
from emulator.openai import fields
from emulator.openai.answer import Shape
from emulator.openai.errors import OpenAIError, bad_type, bad_value, missing


@dataclass(frozen=True, slots=True)
class Call:
    """A valid generating call, reduced to what its answer depends on."""

    kind: str  # "chat", "completion" or "response"
    model: str
    stream: bool
    include_usage: bool
    seeds: tuple[int, ...]  # one per choice
    shape: Shape
    prompt_tokens: int
    overrides: Overrides
    fingerprint: bytes
    request: dict[str, Any]
    echo: tuple[str, ...] = ()  # completions: the prompt each choice's text starts with
    legacy_logprobs: bool = False


def canonical(value: object) -> bytes:
    """JSON with sorted keys and no spaces: the same value, the same bytes."""
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def fingerprint(kind: str, data: dict[str, Any]) -> bytes:
    """The whole request: what a retry sends again."""
    return hashlib.sha256(kind.encode() + canonical(data)).digest()


def seeds(material: object, count: int) -> tuple[int, ...]:
    """``count`` choice seeds from everything the text depends on."""
    base = hashlib.sha256(canonical(material)).digest()
    return tuple(
        int.from_bytes(hashlib.sha256(base + i.to_bytes(4, "big")).digest()[:8], "big")
        for i in range(count)
    )


def markers(texts: Iterable[str]) -> Overrides:
    """The overrides the texts' markers set; 400 naming ``emulator.<key>`` if one is bad."""
    try:
        return parse_markers(texts)
    except MarkerError as exc:
        raise OpenAIError(str(exc), f"emulator.{exc.key}", "invalid_value") from None


def function_tools(value: Any, nested: bool) -> dict[str, str]:
    """``tools``: function tools by name, each with its parameters schema as canonical JSON.

    Chat nests the function (``{"type": "function", "function": {name, parameters}}``);
    the Responses API does not (``{"type": "function", name, parameters}``).
    """
    if value is None:
        return {}
    if not isinstance(value, list):
        raise bad_type("tools", "array", value)
    found: dict[str, str] = {}
    for i, tool in enumerate(value):
        param = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise bad_type(param, "object", tool)
        if tool.get("type") != "function":
            raise bad_value(f"{param}.type", "the emulator serves function tools only.")
        function = tool.get("function") if nested else tool
        where = f"{param}.function" if nested else param
        if not isinstance(function, dict):
            raise missing(where)
        name = fields.string(function, "name", required=True, param=f"{where}.name")
        parameters = fields.obj(function, "parameters", f"{where}.parameters") or {}
        found[str(name)] = canonical(parameters).decode()
    return found


def tool_called(
    value: Any, tools: dict[str, str], overrides: Overrides, nested: bool
) -> str | None:
    """The tool the answer calls: by ``tool_choice``, or under ``auto`` by the marker."""
    if value is None:
        value = "auto" if tools else "none"
    if not tools and value != "none":
        raise bad_value("tool_choice", "tool_choice is only allowed when 'tools' are specified.")
    if value == "none":
        return None
    if value == "auto":
        return next(iter(tools)) if overrides.tool else None
    if value == "required":
        return next(iter(tools))
    if isinstance(value, dict) and value.get("type") == "function":
        holder = value.get("function") if nested else value
        name = holder.get("name") if isinstance(holder, dict) else None
        param = "tool_choice.function.name" if nested else "tool_choice.name"
        if not isinstance(name, str):
            raise missing(param)
        if name not in tools:
            raise bad_value(param, f"no tool named {name!r} in 'tools'.")
        return name
    raise bad_value(
        "tool_choice",
        "expected 'none', 'auto', 'required' or {\"type\": \"function\", ...}.",
    )


def output_format(value: Any, param: str, nested: bool) -> str | None:
    """The JSON format asked for: None for text, "" for any object, else the schema's JSON.

    Chat nests the schema (``{"type": "json_schema", "json_schema": {name, schema}}``);
    the Responses API's ``text.format`` does not.
    """
    if value is None:
        return None
    if not isinstance(value, dict):
        raise bad_type(param, "object", value)
    kind = value.get("type")
    if kind == "text":
        return None
    if kind == "json_object":
        return ""
    if kind == "json_schema":
        holder = value.get("json_schema") if nested else value
        where = f"{param}.json_schema" if nested else param
        if not isinstance(holder, dict):
            raise missing(where)
        fields.string(holder, "name", required=True, param=f"{where}.name")
        schema = fields.obj(holder, "schema", f"{where}.schema")
        return canonical(schema).decode() if schema else ""
    raise bad_value(
        f"{param}.type",
        f"got {kind!r}; supported values are 'text', 'json_object' and 'json_schema'.",
    )


def sampling(data: dict[str, Any]) -> list[Any]:
    """The sampling fields that change the text."""
    return [
        fields.integer(data, "seed", -(2**63), 2**63 - 1),
        fields.number(data, "temperature", 0, 2),
        fields.number(data, "top_p", 0, 1),
    ]


def usage(prompt_tokens: int, completion_tokens: int, overrides: Overrides) -> dict[str, Any]:
    """Chat and completions usage; markers add cached and reasoning tokens to the details.

    Reasoning tokens count in ``completion_tokens`` (as OpenAI counts them); cached tokens
    are at most the prompt's.
    """
    cached = min(overrides.cached_tokens or 0, prompt_tokens)
    reasoning = overrides.reasoning_tokens or 0
    completion = completion_tokens + reasoning
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion,
        "total_tokens": prompt_tokens + completion,
        "prompt_tokens_details": {"cached_tokens": cached, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": reasoning,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }
