"""Streamed OpenAI events assembled into the whole answer the upstream would have sent.

Pure: each assembler takes the decoded JSON of one server-sent event and returns the deltas
it carries; ``final()`` gives the answer in its non-streamed shape (a ``chat.completion``, a
``text_completion``, a ``response``), with every choice by ``index``, tool calls joined from
their pieces, log probabilities concatenated and the upstream's ``usage``. Fields this module
does not know are kept as they came.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from worker.providers.errors import StreamInterrupted, UpstreamRefused
from worker.providers.interface import Final, Item, TextDelta, TokenUsage, ToolCallDelta

# Top-level fields of a chunk that describe the whole answer; the first value seen is kept.
_ENVELOPE = ("id", "created", "model", "system_fingerprint", "service_tier")
# OpenAI's finish reasons; anything else an upstream invents reads as "stop".
FINISH_REASONS = ("stop", "length", "tool_calls", "content_filter", "function_call")


def usage_tokens(usage: Any) -> TokenUsage:
    """Token counts from a chat/completions ``usage`` or a Responses one."""
    if not isinstance(usage, dict):
        return TokenUsage()
    input_details = usage.get("prompt_tokens_details") or usage.get("input_tokens_details")
    output_details = usage.get("completion_tokens_details") or usage.get("output_tokens_details")
    return TokenUsage(
        input_tokens=int_or_zero(usage.get("prompt_tokens", usage.get("input_tokens"))),
        output_tokens=int_or_zero(usage.get("completion_tokens", usage.get("output_tokens"))),
        cached_tokens=int_or_zero(_get(input_details, "cached_tokens")),
        reasoning_tokens=int_or_zero(_get(output_details, "reasoning_tokens")),
    )


def int_or_zero(value: Any) -> int:
    """A positive integer as given; anything else is 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _index(obj: dict[str, Any]) -> int:
    index = obj.get("index")
    return index if isinstance(index, int) else 0


def _get(obj: Any, key: str) -> Any:
    return obj.get(key) if isinstance(obj, dict) else None


def stream_error(event: dict[str, Any], partial: str) -> Exception:
    """The error an ``{"error": …}`` event stands for: a refusal when it says the request was
    invalid, otherwise a break in the answer that a later attempt may not meet."""
    error = event.get("error")
    detail = error if isinstance(error, dict) else {"message": str(error)}
    words = str(detail.get("message") or detail.get("code") or "an error event")
    kind = f"{detail.get('type') or ''} {detail.get('code') or ''}"
    message = f"the upstream sent an error mid-stream: {words}"
    if "invalid_request" in kind or "invalid_prompt" in kind:
        return UpstreamRefused(message, status_code=200, body={"error": detail})
    return StreamInterrupted(message, partial_text=partial)


@dataclass(slots=True)
class _Choice:
    """One choice of a chat or text completion, as far as it has arrived."""

    index: int
    text: list[str] = field(default_factory=list)
    message: dict[str, Any] = field(default_factory=dict)
    tool_calls: dict[int, dict[str, Any]] = field(default_factory=dict)
    logprobs: dict[str, Any] | None = None
    finish_reason: str | None = None


class ChatAssembler:
    """``chat.completion.chunk`` events in, a ``chat.completion`` out."""

    object_name = "chat.completion"

    def __init__(self) -> None:
        self.envelope: dict[str, Any] = {}
        self.choices: dict[int, _Choice] = {}
        self.usage: dict[str, Any] | None = None

    def _take_envelope(self, event: dict[str, Any]) -> None:
        for key in _ENVELOPE:
            if key not in self.envelope and event.get(key) is not None:
                self.envelope[key] = event[key]
        if isinstance(event.get("usage"), dict):
            self.usage = event["usage"]

    def _choice(self, raw: dict[str, Any]) -> _Choice:
        index = _index(raw)
        choice = self.choices.get(index)
        if choice is None:
            choice = self.choices[index] = _Choice(index)
        if raw.get("finish_reason"):
            choice.finish_reason = raw["finish_reason"]
        return choice

    def feed(self, event: dict[str, Any]) -> list[Item]:
        """The deltas one chunk carries."""
        self._take_envelope(event)
        out: list[Item] = []
        for raw in event.get("choices") or ():
            if not isinstance(raw, dict):
                continue
            choice = self._choice(raw)
            _merge_logprobs(choice, raw.get("logprobs"))
            delta = raw.get("delta")
            if isinstance(delta, dict):
                out.extend(self._delta(choice, delta))
        return out

    def _delta(self, choice: _Choice, delta: dict[str, Any]) -> list[Item]:
        out: list[Item] = []
        for key, value in delta.items():
            if key == "content":
                if isinstance(value, str) and value:
                    choice.text.append(value)
                    out.append(TextDelta(value, choice.index))
            elif key == "tool_calls" and isinstance(value, list):
                out.extend(self._tool_calls(choice, value))
            elif isinstance(value, str) and key != "role":
                # refusal, reasoning_content and the like: text that arrives in pieces
                choice.message[key] = choice.message.get(key, "") + value
            elif value is not None:
                choice.message[key] = value
        return out

    def _tool_calls(self, choice: _Choice, pieces: list[Any]) -> list[Item]:
        out: list[Item] = []
        for piece in pieces:
            if not isinstance(piece, dict):
                continue
            index = _index(piece)
            call = choice.tool_calls.setdefault(
                index, {"id": None, "type": "function", "function": {"name": "", "arguments": ""}}
            )
            function = piece.get("function")
            if not isinstance(function, dict):
                function = {}
            name = function.get("name") if isinstance(function.get("name"), str) else None
            arguments = function.get("arguments")
            arguments = arguments if isinstance(arguments, str) else ""
            if isinstance(piece.get("id"), str):
                call["id"] = piece["id"]
            if isinstance(piece.get("type"), str):
                call["type"] = piece["type"]
            if name:
                call["function"]["name"] += name
            call["function"]["arguments"] += arguments
            if name or arguments or piece.get("id"):
                out.append(ToolCallDelta(choice.index, index, arguments, piece.get("id"), name))
        return out

    def final(self) -> Final:
        """The whole answer."""
        choices = [self._whole(self.choices[i]) for i in sorted(self.choices)]
        body = {**self.envelope, "object": self.object_name, "choices": choices}
        body.setdefault("id", "")
        body.setdefault("created", 0)
        body.setdefault("model", "")
        body["usage"] = self.usage
        first = choices[0] if choices else {}
        calls = (first.get("message") or {}).get("tool_calls") or []
        return Final(
            body=body,
            finish_reason=first.get("finish_reason"),
            usage=usage_tokens(self.usage),
            tool_calls=list(calls),
            response_id=body.get("id") or None,
            model=body.get("model") or None,
        )

    def _whole(self, choice: _Choice) -> dict[str, Any]:
        message: dict[str, Any] = {
            "role": "assistant",
            "content": "".join(choice.text) if choice.text else None,
            "refusal": None,
            **choice.message,
        }
        message["role"] = "assistant"
        if choice.tool_calls:
            message["tool_calls"] = [choice.tool_calls[i] for i in sorted(choice.tool_calls)]
        reason = choice.finish_reason or ("tool_calls" if choice.tool_calls else "stop")
        return {
            "index": choice.index,
            "message": message,
            "logprobs": choice.logprobs,
            "finish_reason": reason if reason in FINISH_REASONS else "stop",
        }

    def partial_text(self) -> str:
        """Choice 0's text so far (for the error of a broken stream)."""
        choice = self.choices.get(0)
        return "".join(choice.text) if choice else ""


def _merge_logprobs(choice: _Choice, logprobs: Any) -> None:
    """Append a chunk's log probabilities: lists grow, anything else is replaced."""
    if not isinstance(logprobs, dict):
        return
    if choice.logprobs is None:
        choice.logprobs = {}
    for key, value in logprobs.items():
        held = choice.logprobs.get(key)
        if isinstance(value, list) and isinstance(held, list):
            held.extend(value)
        elif isinstance(value, list):
            choice.logprobs[key] = list(value)
        elif key not in choice.logprobs or value is not None:
            choice.logprobs[key] = value


class CompletionAssembler(ChatAssembler):
    """Legacy ``text_completion`` chunks in, a ``text_completion`` out."""

    object_name = "text_completion"

    def feed(self, event: dict[str, Any]) -> list[Item]:
        """The text one chunk carries."""
        self._take_envelope(event)
        out: list[Item] = []
        for raw in event.get("choices") or ():
            if not isinstance(raw, dict):
                continue
            choice = self._choice(raw)
            _merge_logprobs(choice, raw.get("logprobs"))
            text = raw.get("text")
            if isinstance(text, str) and text:
                choice.text.append(text)
                out.append(TextDelta(text, choice.index))
        return out

    def _whole(self, choice: _Choice) -> dict[str, Any]:
        reason = choice.finish_reason or "stop"
        return {
            "index": choice.index,
            "text": "".join(choice.text),
            "logprobs": choice.logprobs,
            "finish_reason": reason if reason in ("stop", "length", "content_filter") else "stop",
        }
