"""What the worker's engine knows of an upstream: one request in, deltas and a final record out.

    async for item in provider.stream(request, client):
        if isinstance(item, Final):
            ...  # always the last item: finish reason, usage, tool calls, the upstream's body
        else:
            ...  # a TextDelta or a ToolCallDelta, as it arrived

A provider is built once per upstream (worker/providers/registry.py) with that upstream's
settings; the engine hands it the HTTP client for each call. Failures raise the
``worker.providers.errors`` tree. Text handed out here is already masked: an upstream that
echoes its own key never gets it into a stream or a stored answer.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx


@dataclass(frozen=True, slots=True)
class Request:
    """One job as an upstream call: the endpoint, the upstream's model name, the body's fields."""

    endpoint: str
    model: str
    messages: list[dict[str, Any]] = field(default_factory=list)
    # Every other body field, passed through as the caller gave it.
    params: dict[str, Any] = field(default_factory=dict)
    temperature: float | None = None
    system_message: str | None = None


@dataclass(frozen=True, slots=True)
class TextDelta:
    """More text of one choice's answer."""

    text: str
    choice: int = 0


@dataclass(frozen=True, slots=True)
class ToolCallDelta:
    """More of one tool call of a choice: its id and name when they first arrive, then arguments."""

    choice: int
    index: int
    arguments: str = ""
    id: str | None = None
    name: str | None = None


@dataclass(frozen=True, slots=True)
class TokenUsage:
    """Tokens as the upstream counted them (all 0 when it reports none)."""

    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int = 0
    reasoning_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Final:
    """How an answer ended: always the last item of a stream."""

    # The answer in the upstream's own (OpenAI) shape, or None for a protocol without one.
    body: dict[str, Any] | None = None
    finish_reason: str | None = "stop"
    usage: TokenUsage = TokenUsage()
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    response_id: str | None = None
    model: str | None = None


Item = TextDelta | ToolCallDelta | Final


class Provider(ABC):
    """One upstream, as the engine calls it."""

    kind: ClassVar[str]
    # The batch endpoints this protocol can serve.
    endpoints: ClassVar[tuple[str, ...]]

    def __init__(self, name: str) -> None:
        self.name = name

    @abstractmethod
    def stream(self, request: Request, client: httpx.AsyncClient) -> AsyncIterator[Item]:
        """Yield the answer's deltas as they arrive, then its ``Final``."""
