"""The Aivvm chat request: validation that names the field, its fingerprint and its seed."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

from emulator.faults import MarkerError, Overrides, parse_markers, strip_markers
from emulator.text import is_cyrillic

# The model table of the original provider: id -> display name.
MODELS = {
    "gpt-3.5-turbo": "GPT-3.5",
    "gpt-3.5-turbo-0613": "GPT-3.5-0613",
    "gpt-3.5-turbo-16k": "GPT-3.5-16K",
    "gpt-3.5-turbo-16k-0613": "GPT-3.5-16K-0613",
    "gpt-4": "GPT-4",
    "gpt-4-0613": "GPT-4-0613",
    "gpt-4-32k": "GPT-4-32K",
    "gpt-4-32k-0613": "GPT-4-32K-0613",
}


class RequestError(ValueError):
    """A request the emulator refuses; ``param`` names the offending field."""

    def __init__(self, param: str, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.param = param
        self.message = message
        self.status = status


@dataclass(frozen=True, slots=True)
class ChatRequest:
    """A valid chat request, reduced to what the answer depends on."""

    fingerprint: bytes
    seed: int
    cyrillic: bool
    overrides: Overrides


def _canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(",", ":")).encode()


def _model(data: dict[str, Any]) -> str:
    model = data.get("model")
    if not isinstance(model, dict):
        raise RequestError("model", 'model must be an object like {"id": ..., "name": ...}')
    model_id = model.get("id")
    if not isinstance(model_id, str):
        raise RequestError("model.id", "model.id must be a string")
    if model_id not in MODELS:
        raise RequestError(
            "model.id", f"model.id {model_id!r} is not supported; models: {', '.join(MODELS)}"
        )
    if not isinstance(model.get("name", ""), str):
        raise RequestError("model.name", "model.name must be a string")
    return model_id


def _messages(data: dict[str, Any]) -> list[dict[str, Any]]:
    messages = data.get("messages")
    if not isinstance(messages, list) or not messages:
        raise RequestError("messages", "messages must be a non-empty list of {role, content}")
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise RequestError(f"messages[{i}]", f"messages[{i}] must be an object")
        for field in ("role", "content"):
            if not isinstance(message.get(field), str):
                raise RequestError(
                    f"messages[{i}].{field}", f"messages[{i}].{field} must be a string"
                )
        if not message["role"]:
            raise RequestError(f"messages[{i}].role", f"messages[{i}].role must not be empty")
    return messages


def _temperature(data: dict[str, Any]) -> float:
    value = data.get("temperature")
    # bool is an int to Python, not a number to a JSON client.
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RequestError("temperature", "temperature must be a number from 0 to 2")
    if not (math.isfinite(value) and 0 <= value <= 2):
        raise RequestError("temperature", f"temperature must be from 0 to 2, not {value}")
    return float(value)


def _string(data: dict[str, Any], field: str) -> str:
    value = data.get(field)
    if not isinstance(value, str):
        raise RequestError(field, f"{field} must be a string")
    return value


def parse_chat(data: Any) -> ChatRequest:
    """Validate a ``POST /api/chat`` body's JSON; raises RequestError naming the field."""
    if not isinstance(data, dict):
        raise RequestError("body", "the body must be a JSON object")
    model_id = _model(data)
    messages = _messages(data)
    _string(data, "key")
    prompt = _string(data, "prompt")
    temperature = _temperature(data)
    try:
        overrides = parse_markers(m["content"] for m in messages)
    except MarkerError as exc:
        raise RequestError(f"emulator.{exc.key}", str(exc)) from None

    users = [m for m in messages if m["role"] == "user"] or messages
    cyrillic = is_cyrillic(strip_markers(users[-1]["content"]))
    seed_digest = hashlib.sha256(_canonical([messages, model_id, prompt, temperature])).digest()
    # The fingerprint is the whole request but the key: what a retry sends again.
    fingerprint = hashlib.sha256(
        _canonical({k: v for k, v in data.items() if k != "key"} | {"temperature": temperature})
    ).digest()
    return ChatRequest(
        fingerprint=fingerprint,
        seed=int.from_bytes(seed_digest[:8], "big"),
        cyrillic=cyrillic,
        overrides=overrides,
    )
