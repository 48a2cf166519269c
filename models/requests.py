"""What makes one batch request valid, for the API and the command line alike.

A request is an OpenAI batch line ``{custom_id, method, url, body: {model, messages, ...}}``
or a native request ``{custom_id, messages, model?, temperature?, system_message?}``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from models.batches import NewJob

ROLES = ("system", "developer", "user", "assistant")
OPENAI_URL = "/v1/chat/completions"
MAX_CUSTOM_ID = 512
MAX_MODEL = 64
DEFAULT_MODEL = "gpt-3.5-turbo"
# A custom_id is part of URLs, SSE fields and JSONL: no control characters, and no
# "/events" ending, which the job's events route would shadow.
EVENTS_SUFFIX = "/events"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# JSON may carry lone UTF-16 surrogates ("\ud800"): they are not text, and no database,
# log or HTTP answer can encode them.
_SURROGATE = re.compile("[\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class Defaults:
    """Batch-level values for requests that do not set their own."""

    model: str = DEFAULT_MODEL
    temperature: float | None = None
    system_message: str | None = None


class InvalidRequest(ValueError):
    """One request's problem; the message names the field."""


def defaults_from(model: Any, temperature: Any, system_message: Any) -> Defaults:
    """Batch-level defaults, held to the same rules as a request's own values."""
    return Defaults(
        model=_model(model, Defaults()),
        temperature=_temperature(temperature, Defaults()),
        system_message=_system_message(system_message, Defaults()),
    )


def request_from(obj: Any, defaults: Defaults) -> NewJob:
    """One request, from an OpenAI batch line or a native request object."""
    if not isinstance(obj, dict):
        raise InvalidRequest("a request must be a JSON object")
    custom_id = _custom_id(obj.get("custom_id"))
    if "body" in obj:
        body = _openai_body(obj)
    elif "messages" in obj:
        body = obj
    else:
        raise InvalidRequest(
            "neither a native request (with messages) nor an OpenAI batch line (with body)"
        )
    return NewJob(
        custom_id=custom_id,
        model=_model(body.get("model"), defaults),
        messages=_messages(body.get("messages")),
        temperature=_temperature(body.get("temperature"), defaults),
        system_message=_system_message(body.get("system_message"), defaults),
    )


def require_text(value: str, field: str) -> str:
    """``value``, if it is text (no lone UTF-16 surrogates); ``field`` names it if not."""
    if _SURROGATE.search(value):
        raise InvalidRequest(f"{field} holds a lone UTF-16 surrogate, which is not text")
    return value


def _sql_text(value: str, field: str) -> str:
    """Text kept in a SQL text column: PostgreSQL cannot hold a NUL character there."""
    if "\x00" in value:
        raise InvalidRequest(f"{field} holds a NUL character")
    return require_text(value, field)


def _custom_id(custom_id: Any) -> str:
    if not isinstance(custom_id, str) or not custom_id.strip():
        raise InvalidRequest("custom_id must be a non-empty string")
    if len(custom_id) > MAX_CUSTOM_ID:
        raise InvalidRequest(f"custom_id is longer than {MAX_CUSTOM_ID} characters")
    if _CONTROL.search(custom_id):
        raise InvalidRequest("custom_id must not hold control characters (newlines, tabs, ...)")
    if custom_id.endswith(EVENTS_SUFFIX):
        raise InvalidRequest(f"custom_id must not end in {EVENTS_SUFFIX!r} (the events route's)")
    return require_text(custom_id, "custom_id")


def _openai_body(obj: dict[str, Any]) -> dict[str, Any]:
    method = obj.get("method", "POST")
    if not isinstance(method, str) or method.upper() != "POST":
        raise InvalidRequest(f"method must be POST, not {method!r}")
    if obj.get("url", OPENAI_URL) != OPENAI_URL:
        raise InvalidRequest(f"url must be {OPENAI_URL}, not {obj.get('url')!r}")
    body = obj["body"]
    if not isinstance(body, dict):
        raise InvalidRequest("body must be a JSON object")
    if body.get("stream"):
        raise InvalidRequest("body.stream is not supported in a batch")
    return body


def _model(model: Any, defaults: Defaults) -> str:
    if model is None:
        return defaults.model
    if not isinstance(model, str) or not model.strip() or len(model) > MAX_MODEL:
        raise InvalidRequest(f"model must be a non-empty string of at most {MAX_MODEL} characters")
    return _sql_text(model, "model")


def _messages(messages: Any) -> list[dict[str, str]]:
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages must be a non-empty list")
    out: list[dict[str, str]] = []
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequest(f"messages[{i}] must be an object with role and content")
        role = message.get("role")
        if role not in ROLES:
            raise InvalidRequest(f"messages[{i}].role must be one of {', '.join(ROLES)}")
        out.append({"role": str(role), "content": _content(message.get("content"), i)})
    return out


def _content(content: Any, i: int) -> str:
    """A message's text; OpenAI's list of text parts is joined into one string."""
    if isinstance(content, str):
        return require_text(content, f"messages[{i}].content")
    if isinstance(content, list) and all(
        isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str)
        for p in content
    ):
        return require_text("".join(p["text"] for p in content), f"messages[{i}].content")
    raise InvalidRequest(f"messages[{i}].content must be a string (or a list of text parts)")


def _temperature(value: Any, defaults: Defaults) -> float | None:
    if value is None:
        return defaults.temperature
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 2:
        raise InvalidRequest("temperature must be a number from 0 to 2")
    return float(value)


def _system_message(value: Any, defaults: Defaults) -> str | None:
    if value is None:
        return defaults.system_message
    if not isinstance(value, str):
        raise InvalidRequest("system_message must be a string")
    return _sql_text(value, "system_message")
