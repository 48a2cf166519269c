"""OpenAI's error answers: the refusal exception, the error body, and the faults' answers."""

from __future__ import annotations

from typing import Any

from emulator.pacing import Send
from emulator.responses import BLOCKED_PAGE, CHALLENGE_PAGE, send_json, send_whole


class OpenAIError(Exception):
    """A request refused the way OpenAI refuses it; ``param`` names the field."""

    def __init__(
        self,
        message: str,
        param: str | None = None,
        code: str | None = None,
        status: int = 400,
        kind: str = "invalid_request_error",
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code
        self.status = status
        self.kind = kind

    def body(self) -> dict[str, Any]:
        """The JSON body: ``{"error": {message, type, param, code}}``."""
        return error_body(self.message, self.kind, self.param, self.code)


def error_body(
    message: str, kind: str, param: str | None = None, code: str | None = None
) -> dict[str, Any]:
    """OpenAI's error object."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def _an(kind: str) -> str:
    return ("an " if kind[0] in "aeiou" else "a ") + kind


def json_kind(value: object) -> str:
    """The JSON name of a value's type, as OpenAI's messages say it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a decimal"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def missing(param: str) -> OpenAIError:
    """A required field is absent."""
    return OpenAIError(
        f"Missing required parameter: '{param}'.", param, "missing_required_parameter"
    )


def bad_type(param: str, expected: str, value: object) -> OpenAIError:
    """A field holds the wrong JSON type."""
    return OpenAIError(
        f"Invalid type for '{param}': expected {_an(expected)}, "
        f"but got {json_kind(value)} instead.",
        param,
        "invalid_type",
    )


def bad_value(param: str, message: str) -> OpenAIError:
    """A field holds a value outside what it accepts."""
    return OpenAIError(f"Invalid value for '{param}': {message}", param, "invalid_value")


# The whole-answer faults: status, error type, code, message.
_JSON_FAULTS = {
    "500": (500, "server_error", None, "The server had an error while processing your request."),
    "503": (503, "server_error", None, "The server is overloaded or not ready yet."),
    "400": (400, "invalid_request_error", None, "The request was refused."),
    "401": (401, "invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
}


async def send_fault(send: Send, fault: str, retry_after: int | None, default_wait: int) -> None:
    """Answer with a whole-response fault: 429, 500, 503, 400, 401, 403 or html."""
    if fault == "429":
        seconds = default_wait if retry_after is None else retry_after
        body = error_body(
            f"Rate limit reached (emulator fault 429). Please try again in {seconds}s.",
            "requests",
            None,
            "rate_limit_exceeded",
        )
        headers = [
            (b"retry-after", str(seconds).encode()),
            (b"retry-after-ms", str(seconds * 1000).encode()),
        ]
        await send_json(send, 429, body, headers)
    elif fault in _JSON_FAULTS:
        status, kind, code, text = _JSON_FAULTS[fault]
        extra = []
        if fault == "503" and retry_after is not None:
            extra.append((b"retry-after", str(retry_after).encode()))
        body = error_body(f"{text} (emulator fault {fault})", kind, None, code)
        await send_json(send, status, body, extra)
    elif fault == "403":
        headers = [(b"cf-mitigated", b"challenge")]
        await send_whole(send, 403, CHALLENGE_PAGE, b"text/html; charset=UTF-8", headers)
    else:
        await send_whole(send, 200, BLOCKED_PAGE, b"text/html; charset=UTF-8")


WHOLE_FAULTS = frozenset({"429", "403", "html", *_JSON_FAULTS})
