"""Chat messages in every shape OpenAI accepts: validation, their text, their token count.

Prompt tokens, documented and deterministic: 3 for the reply's priming, plus per message 4
and the words (whitespace-separated) of every text it holds (string content, text and
refusal parts, its tool calls' names and arguments, a ``name``), plus 85 per non-text part
(``image_url``, ``input_audio``, ``file``). Markers are not counted, so a marker that only
shapes framing or faults leaves usage alone.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from emulator.faults import strip_markers
from emulator.openai.errors import OpenAIError, bad_type, bad_value, missing

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
# The content part types each role may send.
_PARTS = {
    "system": ("text",),
    "developer": ("text",),
    "user": ("text", "image_url", "input_audio", "file"),
    "assistant": ("text", "refusal"),
    "tool": ("text",),
    "function": ("text",),
}
# The field each part type must hold, and what that field must be.
_PART_FIELD = {
    "text": ("text", str),
    "refusal": ("refusal", str),
    "image_url": ("image_url", dict),
    "input_audio": ("input_audio", dict),
    "file": ("file", dict),
}
_EXPECTED = {str: "string", dict: "object"}
_INSTEAD_OF_CONTENT = ("tool_calls", "function_call", "refusal", "audio")
NON_TEXT_TOKENS = 85
MESSAGE_TOKENS = 4
PRIMING_TOKENS = 3


def words(text: str) -> int:
    """The token count of a text: its words, markers left out."""
    return len(strip_markers(text).split())


@dataclass(slots=True)
class Prompt:
    """What a prompt contributes: its texts (markers and all), seed material, token count."""

    texts: list[str] = field(default_factory=list)
    material: list[Any] = field(default_factory=list)
    tokens: int = PRIMING_TOKENS
    last_user: str = ""

    def add_text(self, text: str) -> None:
        """Count and keep one text; the seed sees it without its markers."""
        self.texts.append(text)
        self.material.append(strip_markers(text))
        self.tokens += words(text)

    def add_other(self, part: dict[str, Any]) -> None:
        """Count one non-text part; its content is part of the seed."""
        self.material.append(part)
        self.tokens += NON_TEXT_TOKENS


def _check_part(param: str, kind: str, inner: dict[str, Any]) -> None:
    if kind == "image_url" and not isinstance(inner.get("url"), str):
        raise missing(f"{param}.image_url.url")
    if kind == "input_audio":
        for name in ("data", "format"):
            if not isinstance(inner.get(name), str):
                raise missing(f"{param}.input_audio.{name}")
        if inner["format"] not in ("wav", "mp3"):
            raise bad_value(f"{param}.input_audio.format", "supported values are 'wav' and 'mp3'.")
    if kind == "file" and not any(isinstance(inner.get(k), str) for k in ("file_data", "file_id")):
        raise missing(f"{param}.file.file_data")


def content(prompt: Prompt, param: str, value: Any, allowed: tuple[str, ...]) -> None:
    """Take a message's content: a string or a list of parts of the allowed types."""
    if isinstance(value, str):
        prompt.add_text(value)
        return
    if not isinstance(value, list):
        raise OpenAIError(
            f"Invalid type for '{param}': expected one of a string or array of objects.",
            param,
            "invalid_type",
        )
    for i, part in enumerate(value):
        where = f"{param}[{i}]"
        if not isinstance(part, dict):
            raise bad_type(where, "object", part)
        kind = part.get("type")
        if kind not in allowed:
            supported = ", ".join(f"'{k}'" for k in allowed)
            raise bad_value(f"{where}.type", f"got {kind!r}; supported values are: {supported}.")
        name, expected = _PART_FIELD[kind]
        inner = part.get(name)
        if inner is None:
            raise missing(f"{where}.{name}")
        if not isinstance(inner, expected):
            raise bad_type(f"{where}.{name}", _EXPECTED[expected], inner)
        if isinstance(inner, str):
            prompt.add_text(inner)
        else:
            _check_part(where, kind, inner)
            prompt.add_other(part)


def _tool_calls(prompt: Prompt, param: str, value: Any) -> None:
    if not isinstance(value, list):
        raise bad_type(param, "array", value)
    for i, call in enumerate(value):
        where = f"{param}[{i}]"
        if not isinstance(call, dict):
            raise bad_type(where, "object", call)
        if not isinstance(call.get("id"), str):
            raise missing(f"{where}.id")
        function = call.get("function")
        if not isinstance(function, dict):
            raise missing(f"{where}.function")
        for name in ("name", "arguments"):
            if not isinstance(function.get(name), str):
                raise missing(f"{where}.function.{name}")
            prompt.add_text(function[name])


def _message(prompt: Prompt, i: int, message: Any) -> None:
    param = f"messages[{i}]"
    if not isinstance(message, dict):
        raise bad_type(param, "object", message)
    role = message.get("role")
    if role is None:
        raise missing(f"{param}.role")
    if role not in ROLES:
        supported = ", ".join(f"'{r}'" for r in ROLES)
        raise OpenAIError(
            f"Invalid value: {role!r}. Supported values are: {supported}.",
            f"{param}.role",
            "invalid_value",
        )
    prompt.tokens += MESSAGE_TOKENS
    prompt.material.append(role)
    if isinstance(message.get("name"), str):
        prompt.add_text(message["name"])
    value = message.get("content")
    calls = message.get("tool_calls")
    if role == "assistant" and calls is not None:
        _tool_calls(prompt, f"{param}.tool_calls", calls)
    if value is None:
        # An assistant message that calls a tool (or refuses, or speaks) may have no content.
        may_omit = role == "function" or (
            role == "assistant" and any(message.get(k) is not None for k in _INSTEAD_OF_CONTENT)
        )
        if not may_omit:
            raise missing(f"{param}.content")
    else:
        content(prompt, f"{param}.content", value, _PARTS[role])
    if role == "tool" and not isinstance(message.get("tool_call_id"), str):
        raise missing(f"{param}.tool_call_id")


def parse_messages(data: dict[str, Any]) -> Prompt:
    """Validate ``messages``; the prompt they make."""
    messages = data.get("messages")
    if messages is None:
        raise missing("messages")
    if not isinstance(messages, list):
        raise bad_type("messages", "array", messages)
    if not messages:
        raise OpenAIError(
            "Invalid 'messages': empty array. Expected an array with minimum length 1.",
            "messages",
            "empty_array",
        )
    prompt = Prompt()
    for i, message in enumerate(messages):
        start = len(prompt.texts)
        _message(prompt, i, message)
        if isinstance(message, dict) and message.get("role") == "user":
            prompt.last_user = " ".join(prompt.texts[start:])
    return prompt
