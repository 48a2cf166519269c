"""An HTTP upstream's edges: naming what went wrong, in the upstream's own words.

Pure functions over status codes, headers, bytes and httpx exceptions, shared by the sync
and async paths and by both protocols. Every message built here passes through ``redact``:
the API key is sent to the upstream and an upstream may echo it back in an error.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx

from worker.providers.decoding import TextStream, html_verdict
from worker.providers.errors import (
    NotAnAnswer,
    RateLimited,
    StreamInterrupted,
    StreamStalled,
    UpstreamError,
    UpstreamRefused,
    UpstreamUnavailable,
)
from worker.providers.masking import redact, redact_json

_TITLE = re.compile(r"<title[^>]*>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_HIDDEN = re.compile(r"<(script|style)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
_TAGS = re.compile(r"<[^>]*>")
MESSAGE_LIMIT = 500


# Answers that can succeed when asked again: a timeout, a conflict, a rate limit, a fault.
RETRYABLE_STATUSES = frozenset({408, 409, 429})


def retry_after_seconds(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After in seconds, from delay-seconds or an HTTP-date; None if absent or bad."""
    if not value or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        pass
    else:
        return max(0.0, seconds) if seconds == seconds else None  # NaN is no delay
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def is_html(content_type: str, body: bytes) -> bool:
    """Whether a response is an HTML page, by its content type or by its first bytes."""
    return "text/html" in content_type.lower() or bool(html_verdict(body[:1024]))


def upstream_message(body: bytes, content_type: str, secret: str = "") -> str:
    """The upstream's own words: a JSON ``error.message``, an HTML title, or the text."""
    text = body.decode("utf-8", errors="replace").strip()
    # Masked before clipping: a clip through the secret would leave its first characters.
    if "json" in content_type.lower() or text.startswith("{"):
        found = _json_message(text)
        if found:
            return _clip(redact(found, secret))
    if is_html(content_type, body):
        title = _TITLE.search(text)
        text = title.group(1) if title else _TAGS.sub(" ", _HIDDEN.sub(" ", text))
    return _clip(redact(text, secret)) or "(empty body)"


def _json_message(text: str) -> str | None:
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    error = data.get("error")
    for candidate in (
        error.get("message") if isinstance(error, dict) else error,
        data.get("message"),
        data.get("detail"),
    ):
        if isinstance(candidate, str) and candidate.strip():
            return candidate
    return None


def _clip(text: str) -> str:
    return " ".join(text.split())[:MESSAGE_LIMIT]


def retry_after(headers: httpx.Headers) -> float | None:
    """How long the upstream asks to wait: ``retry-after-ms`` (OpenAI's), else Retry-After."""
    milliseconds = retry_after_seconds(headers.get("retry-after-ms"))
    if milliseconds is not None:
        return milliseconds / 1000
    return retry_after_seconds(headers.get("retry-after"))


def error_body(body: bytes, words: str, status: int, secret: str = "") -> dict[str, Any]:
    """The upstream's error body as JSON (masked), or an OpenAI-shaped one made of its words."""
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if isinstance(data, dict):
        masked: dict[str, Any] = redact_json(data, secret)
        return masked
    kind = "server_error" if status >= 500 else "invalid_request_error"
    return {"error": {"message": words, "type": kind, "param": None, "code": None}}


def error_for_status(
    status: int, headers: httpx.Headers, body: bytes, *, secret: str = ""
) -> UpstreamError:
    """The error a non-2xx answer stands for: 429 rate limit; 5xx, 408, 409 unavailable for
    now; any other refused."""
    words = upstream_message(body, headers.get("content-type", ""), secret)
    message = redact(f"{status}: {words}", secret)
    data = error_body(body, words, status, secret)
    if status == 429:
        return RateLimited(message, retry_after=retry_after(headers), body=data)
    if status >= 500 or status in RETRYABLE_STATUSES:
        return UpstreamUnavailable(message, status_code=status, body=data)
    return UpstreamRefused(message, status_code=status, body=data)


def not_an_answer(
    status: int, headers: httpx.Headers, body: bytes, *, secret: str = ""
) -> NotAnAnswer:
    """The error for a 2xx answer that is an HTML page (an anti-bot wall) rather than text."""
    page = upstream_message(body, headers.get("content-type", "") or "text/html", secret)
    return NotAnAnswer(
        redact(f"the upstream answered {status} with an HTML page: {page}", secret),
        status_code=status,
    )


def transport_error(
    exc: httpx.RequestError,
    stream: TextStream | None,
    *,
    stall: float | None,
    origin: str,
) -> UpstreamError:
    """The error a transport failure stands for, before (``stream`` None) or inside the body."""
    return transport_failure(
        exc, None if stream is None else stream.text, stall=stall, origin=origin
    )


def transport_failure(
    exc: httpx.RequestError, partial: str | None, *, stall: float | None, origin: str
) -> UpstreamError:
    """The error a transport failure stands for, before the body (``partial`` None) or inside
    it, having received ``partial``."""
    if isinstance(exc, httpx.ReadTimeout):
        return StreamStalled(
            f"no data from the upstream for {stall} s", partial_text=partial or "", status_code=200
        )
    detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if partial is None or isinstance(exc, httpx.ConnectError | httpx.TimeoutException):
        return UpstreamUnavailable(f"could not reach {origin} ({detail})")
    return StreamInterrupted(f"the stream broke off: {detail}", partial_text=partial)


def origin_of(url: httpx.URL) -> str:
    """``scheme://host:port`` of a URL: enough to say where, never its credentials."""
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.host}{port}"


def model_list(status: int, headers: httpx.Headers, body: bytes) -> list[dict[str, str]]:
    """The ``/api/models`` answer as ``{id, name}`` dicts; raises the error it stands for."""
    if status >= 300:
        raise error_for_status(status, headers, body)
    if is_html(headers.get("content-type", ""), body):
        raise not_an_answer(status, headers, body)
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    if not isinstance(data, list) or not all(
        isinstance(m, dict) and isinstance(m.get("id"), str) for m in data
    ):
        text = _clip(body.decode("utf-8", "replace"))
        raise NotAnAnswer(
            f"the model list is not a JSON list of {{id, name}}: {text}", status_code=status
        )
    return [{"id": m["id"], "name": str(m.get("name") or m["id"])} for m in data]
