"""What makes one batch request valid, for the API and the command line alike.

A request is an OpenAI batch line ``{custom_id, method, url, body: {model, ...}}`` or a native
request ``{custom_id, messages, model?, temperature?, system_message?, ...}`` (a chat
request). Body fields pass through to the upstream as given, but ``stream`` and
``stream_options``, which are the service's own. Messages may take every shape OpenAI
accepts (content parts, images, ``tool`` messages, assistant ``tool_calls``, ``developer``).

With a routing table (the API has one) a request is also checked against the upstream that
will serve it: a model no upstream serves, an endpoint its protocol lacks, or a field it
cannot carry is refused now, by line, rather than failing later, job by job.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from models.batches import NewJob, messages_json
from models.endpoints import CHAT, COMPLETIONS, EMBEDDINGS, ENDPOINTS, KIND_ENDPOINTS, RESPONSES
from models.routing import Route, Routing
from models.upstreams import AIVVM_MODELS

ROLES = ("system", "developer", "user", "assistant", "tool", "function")
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
# Body fields read into their own columns, and the ones the service sets itself.
OWN_FIELDS = ("custom_id", "model", "messages", "temperature", "system_message")
OURS = ("stream", "stream_options")
_NOT_PARAMS = frozenset((*OWN_FIELDS, *OURS))
# What each endpoint's body must hold besides the model.
REQUIRED = {EMBEDDINGS: "input", RESPONSES: "input", COMPLETIONS: "prompt"}
# The Aivvm protocol carries text messages and these two options, nothing else.
AIVVM_ROLES = ("system", "developer", "user", "assistant")


@dataclass(frozen=True, slots=True)
class Defaults:
    """Batch-level values for requests that do not set their own."""

    model: str = DEFAULT_MODEL
    temperature: float | None = None
    system_message: str | None = None
    # The batch's endpoint; None while it is not known yet (a file being uploaded).
    endpoint: str | None = None


class InvalidRequest(ValueError):
    """One request's problem; the message names the field."""

    kind = "invalid"


class UnsupportedRequest(InvalidRequest):
    """A well-formed request that no upstream here can serve; the message says what can."""

    kind = "unsupported"


def defaults_from(
    model: Any, temperature: Any, system_message: Any, endpoint: str | None = None
) -> Defaults:
    """Batch-level defaults, held to the same rules as a request's own values."""
    return Defaults(
        model=_model(model, Defaults()),
        temperature=_temperature(temperature, Defaults()),
        system_message=_system_message(system_message, Defaults()),
        endpoint=endpoint,
    )


def request_from(obj: Any, defaults: Defaults, routing: Routing | None = None) -> NewJob:
    """One request, from an OpenAI batch line or a native request object."""
    return request_with_text(obj, defaults, routing)[0]


def request_with_text(
    obj: Any, defaults: Defaults, routing: Routing | None = None
) -> tuple[NewJob, str]:
    """``request_from``, with the job's messages as the JSON text stored for them (made once
    here, where the checks need it anyway)."""
    if not isinstance(obj, dict):
        raise InvalidRequest("a request must be a JSON object")
    custom_id = _custom_id(obj.get("custom_id"))
    if "body" in obj:
        endpoint, body = _openai_line(obj, defaults)
    elif "messages" in obj:
        endpoint, body = _native(obj, defaults)
    else:
        raise InvalidRequest(
            "neither a native request (with messages) nor an OpenAI batch line (with body)"
        )
    model = _model(body.get("model"), defaults)
    messages: list[dict[str, Any]] = []
    text = "[]"
    if endpoint == CHAT:
        messages, text = _messages(body.get("messages"))
    elif body.get(REQUIRED[endpoint]) in (None, "", []):
        raise InvalidRequest(f"body.{REQUIRED[endpoint]} is required for {endpoint}")
    params = {k: v for k, v in body.items() if k not in _NOT_PARAMS}
    if params:
        _all_text(params, "body")
    temperature = _temperature(body.get("temperature"), defaults)
    system_message = _system_message(body.get("system_message"), defaults)
    chars_in = _characters(messages, system_message, params)
    upstream = None
    if routing is not None:
        upstream, routed = _routed(model, messages, params, endpoint, routing)
        if routed is not messages:
            messages, text = routed, messages_json(routed)
    # Built once: a frozen dataclass's __init__ (and replace) cost per field, per request.
    job = NewJob(
        custom_id=custom_id,
        model=model,
        messages=messages,
        temperature=temperature,
        system_message=system_message,
        params=params,
        upstream=upstream,
        chars_in=chars_in,
    )
    return job, text


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


def _all_text(value: Any, field: str) -> None:
    """Every string in a JSON value is text (kept as JSON, NUL characters are fine)."""
    # Nearly every value is clean: check it without building a field name per string, and
    # walk it again, naming the field, only when it holds a surrogate.
    if not _clean(value):
        _name_surrogate(value, field)


def _clean(value: Any) -> bool:
    if isinstance(value, str):
        return _SURROGATE.search(value) is None
    if isinstance(value, dict):
        return all(_SURROGATE.search(str(key)) is None and _clean(v) for key, v in value.items())
    if isinstance(value, list):
        return all(map(_clean, value))
    return True


def _name_surrogate(value: Any, field: str) -> None:
    if isinstance(value, str):
        require_text(value, field)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _name_surrogate(item, f"{field}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            require_text(str(key), field)
            _name_surrogate(item, f"{field}.{key}")


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


def _openai_line(obj: dict[str, Any], defaults: Defaults) -> tuple[str, dict[str, Any]]:
    method = obj.get("method", "POST")
    if not isinstance(method, str) or method.upper() != "POST":
        raise InvalidRequest(f"method must be POST, not {method!r}")
    url = obj.get("url", defaults.endpoint or CHAT)
    if url not in ENDPOINTS:
        raise InvalidRequest(f"url must be one of {', '.join(ENDPOINTS)}, not {url!r}")
    if defaults.endpoint is not None and url != defaults.endpoint:
        raise UnsupportedRequest(
            f"url is {url!r}, but the batch's endpoint is {defaults.endpoint!r}"
        )
    body = obj["body"]
    if not isinstance(body, dict):
        raise InvalidRequest("body must be a JSON object")
    if body.get("stream"):
        raise InvalidRequest("body.stream is not supported in a batch")
    return url, body


def _native(obj: dict[str, Any], defaults: Defaults) -> tuple[str, dict[str, Any]]:
    if defaults.endpoint not in (None, CHAT):
        raise UnsupportedRequest(
            f"a native request (with messages) is a chat request, but the batch's endpoint is"
            f" {defaults.endpoint!r}: use OpenAI batch lines with url and body"
        )
    if obj.get("stream"):
        raise InvalidRequest("stream is not supported in a batch")
    return CHAT, obj


def _model(model: Any, defaults: Defaults) -> str:
    if model is None:
        return defaults.model
    if not isinstance(model, str) or not model.strip() or len(model) > MAX_MODEL:
        raise InvalidRequest(f"model must be a non-empty string of at most {MAX_MODEL} characters")
    return _sql_text(model, "model")


def _messages(messages: Any) -> tuple[list[dict[str, Any]], str]:
    """The messages, checked, and their JSON text."""
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("messages must be a non-empty list")
    # Nearly every request is good: check each message's shape, then every string at once in
    # the messages' JSON text (a lone surrogate is written there as it is). On any doubt the
    # checks run again in order, message by message, so the first problem is the one named.
    if all(map(_message_ok, messages)):
        text = _json_text(messages)
        if text is not None and _SURROGATE.search(text) is None:
            return messages, text
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            raise InvalidRequest(f"messages[{i}] must be an object with role and content")
        role = message.get("role")
        if role not in ROLES:
            raise InvalidRequest(f"messages[{i}].role must be one of {', '.join(ROLES)}")
        content = message.get("content")
        # Absent content is the upstream's to judge (an assistant's tool calls have none).
        if content is not None and not _content_ok(content):
            raise InvalidRequest(
                f"messages[{i}].content must be a string or a list of content parts"
                " (objects with a type)"
            )
        _all_text(message, f"messages[{i}]")
    return messages, messages_json(messages)


def _message_ok(message: Any) -> bool:
    if not isinstance(message, dict) or message.get("role") not in ROLES:
        return False
    content = message.get("content")
    return content is None or _content_ok(content)


def _json_text(value: Any) -> str | None:
    try:
        return messages_json(value)
    except (ValueError, TypeError, RecursionError):
        return None


def _content_ok(content: Any) -> bool:
    if isinstance(content, str):
        return True
    return isinstance(content, list) and all(
        isinstance(p, dict) and isinstance(p.get("type"), str) for p in content
    )


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


def _routed(
    model: str,
    messages: list[dict[str, Any]],
    params: dict[str, Any],
    endpoint: str,
    routing: Routing,
) -> tuple[str, list[dict[str, Any]]]:
    """The upstream that will serve the request and the messages it takes, or the refusal
    saying why none can."""
    route = routing.route(model)
    if route is None:
        raise UnsupportedRequest(
            f"model {model!r} is not served here; models served: {routing.served_text()}"
        )
    upstream = route.upstream
    supported = KIND_ENDPOINTS.get(upstream.kind, ())
    if endpoint not in supported:
        raise UnsupportedRequest(
            f"model {model!r} is served by upstream {upstream.name!r} (kind {upstream.kind}),"
            f" which supports only {', '.join(supported)}, not {endpoint}"
        )
    if upstream.kind == "aivvm":
        return upstream.name, _aivvm_messages(model, messages, params, route)
    return upstream.name, messages


def _aivvm_messages(
    model: str, messages: list[dict[str, Any]], params: dict[str, Any], route: Route
) -> list[dict[str, Any]]:
    """Text messages for the Aivvm protocol (text parts joined), or the refusal naming why."""
    name = route.upstream.name
    what = f"model {model!r} is served by upstream {name!r} (kind aivvm), which takes"
    if route.model not in AIVVM_MODELS:
        raise UnsupportedRequest(f"{what} only the models {', '.join(AIVVM_MODELS)}")
    if params:
        raise UnsupportedRequest(
            f"{what} only messages, temperature and system_message, not"
            f" {', '.join(sorted(params))}; route the model to an upstream of kind openai"
            " to pass those through"
        )
    # The usual messages, each {"role", "content"} (in that order) with text content, are
    # taken as they are (and so is their JSON text, already made).
    if all(map(_plain_text_message, messages)):
        return messages
    out: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        role, content = message.get("role"), message.get("content")
        extra = sorted(set(message) - {"role", "content"})
        if role not in AIVVM_ROLES or extra:
            found = f"role {role}" if role not in AIVVM_ROLES else ", ".join(extra)
            raise UnsupportedRequest(
                f"messages[{i}]: {what} only text messages of the roles"
                f" {', '.join(AIVVM_ROLES)}, not {found}"
            )
        if isinstance(content, list):
            kinds = sorted({str(p.get("type")) for p in content if p.get("type") != "text"})
            if kinds:
                raise UnsupportedRequest(
                    f"messages[{i}].content: {what} text only, not {', '.join(kinds)} parts"
                )
            content = "".join(str(p.get("text", "")) for p in content)
        if not isinstance(content, str):
            raise UnsupportedRequest(f"messages[{i}].content: {what} text only")
        out.append({"role": role, "content": content})
    return out


def _plain_text_message(message: dict[str, Any]) -> bool:
    return (
        len(message) == 2
        and next(iter(message)) == "role"
        and message["role"] in AIVVM_ROLES
        and isinstance(message.get("content"), str)
    )


def input_characters(job: NewJob) -> int:
    """The request's text in characters: message text, system message, input or prompt."""
    return _characters(job.messages, job.system_message, job.params)


def _characters(
    messages: list[dict[str, Any]], system_message: str | None, params: dict[str, Any]
) -> int:
    total = len(system_message or "")
    for message in messages:
        total += _text_length(message.get("content"))
    if params:
        for key in ("input", "prompt", "instructions"):
            total += _text_length(params.get(key))
    return total


def _text_length(value: Any) -> int:
    if isinstance(value, str):
        return len(value)
    if isinstance(value, dict):
        return _text_length(value.get("text")) + _text_length(value.get("content"))
    if isinstance(value, list):
        return sum(_text_length(v) for v in value)
    return 0
