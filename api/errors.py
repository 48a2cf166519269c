"""Every error the API answers, and the one place where errors become HTTP responses.

    ApiError                 an answer with a status, a code and a message
    ├── Unauthorized         401: no key, an unknown key, a revoked key
    ├── BodyTooLarge         413: the body is over the configured limit
    ├── TooManyRequests      429: a rate limit or a tenant quota (with Retry-After)
    ├── Unavailable          503: SQL or Redis is down (with Retry-After)
    └── BadRequests          400 / 413 / 422: requests of a batch that cannot be accepted

Domain errors raised below the web layer (models.errors) are mapped here too; the errors
that say SQL or Redis is unavailable are answered 503 by api/context.py (and counted by
api/outages.py); anything else is a 500 whose details go to the log, never to the caller.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from api.outages import RETRY_AFTER_SECONDS, Outages, service_of
from models.errors import AivbatchError, Conflict, InvalidInput, NotFound

log = logging.getLogger(__name__)

# OpenAI's error ``type`` values, so its clients raise the matching exception class.
_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    405: "invalid_request_error",
    409: "conflict_error",
    413: "invalid_request_error",
    422: "invalid_request_error",
    429: "rate_limit_error",
    503: "service_unavailable_error",
}
# Reports of bad lines are cut here; the count says how many there were.
MAX_REPORTED_LINES = 100


class ApiError(Exception):
    """An error answer: HTTP status, stable code, message naming the field or line."""

    status: int = 400
    code: str = "invalid_request"

    def __init__(
        self, message: str, *, param: str | None = None, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The JSON body of the answer."""
        return error_body(self.status, self.code, self.message, self.param)

    def response(self) -> JSONResponse:
        """The whole answer."""
        return JSONResponse(self.body(), self.status, headers=_headers(self.status, self.headers))


class Unauthorized(ApiError):
    """The request carries no valid API key."""

    status = 401
    code = "invalid_api_key"


class BodyTooLarge(ApiError):
    """The request body is over ``AIVBATCH_MAX_BODY_BYTES``."""

    status = 413
    code = "body_too_large"


class TooManyRequests(ApiError):
    """A rate limit or a quota of the tenant is reached; ``Retry-After`` says when to retry."""

    status = 429
    code = "rate_limit_exceeded"

    def __init__(
        self,
        message: str,
        *,
        retry_after: int,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message, headers={**(headers or {}), "Retry-After": str(retry_after)})
        self.code = code or self.code


class Unavailable(ApiError):
    """SQL or Redis does not answer; the caller should retry shortly."""

    status = 503
    code = "service_unavailable"

    def __init__(self, service: str) -> None:
        super().__init__(
            f"{service} is unavailable; retry shortly",
            headers={"Retry-After": str(RETRY_AFTER_SECONDS)},
        )


@dataclass(frozen=True, slots=True)
class LineProblem:
    """Why one request of a batch cannot be accepted; ``kind`` decides the status."""

    line: int
    message: str
    kind: str = "invalid"  # invalid | unsupported | too_large | duplicate


class BadRequests(ApiError):
    """Requests of a batch that cannot be accepted, every one named by its line."""

    # The most telling status when problems of several kinds are found at once.
    _BY_KIND = {
        "too_large": (413, "request_too_large"),
        "invalid": (400, "invalid_jsonl"),
        "unsupported": (400, "unsupported_request"),
        "duplicate": (422, "duplicate_custom_id"),
        "too_many": (422, "too_many_requests_in_batch"),
    }

    def __init__(self, problems: list[LineProblem], *, label: str = "line") -> None:
        kind = next(k for k in self._BY_KIND if any(p.kind == k for p in problems))
        self.status, self.code = self._BY_KIND[kind]
        self.problems = problems
        self.label = label
        shown = [f"{label} {p.line}: {p.message}" for p in problems[:5]]
        more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
        first = problems[0]
        param = f"{label} {first.line}" if first.line else None
        super().__init__("; ".join(shown) + more, param=param)

    @classmethod
    def too_many(cls, count: int, limit: int, *, exact: bool = True) -> BadRequests:
        """A batch over the request limit (``exact``: ``count`` is the whole batch's)."""
        held = f"{count} requests is" if exact else f"{count} requests or more are"
        message = f"{held} over the limit of {limit} per batch (AIVBATCH_MAX_REQUESTS_PER_BATCH)"
        return cls([LineProblem(0, message, "too_many")])

    def body(self) -> dict[str, Any]:
        body = super().body()
        if self.code != "too_many_requests_in_batch":
            body["error"]["lines"] = [
                {"line": p.line, "message": p.message} for p in self.problems[:MAX_REPORTED_LINES]
            ]
            body["error"]["line_count"] = len(self.problems)
        else:
            body["error"]["message"] = self.problems[0].message
            body["error"]["param"] = "requests"
        return body


def error_body(status: int, code: str, message: str, param: str | None = None) -> dict[str, Any]:
    """The one error shape (OpenAI's), used by every route."""
    return {
        "error": {
            "message": message,
            "type": _TYPES.get(status, "api_error"),
            "param": param,
            "code": code,
        }
    }


def _headers(status: int, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    if status == 503:
        headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    headers.update(extra or {})
    return headers


def error_response(
    status: int,
    code: str,
    message: str,
    param: str | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    """An error answer in the one shape."""
    body = error_body(status, code, message, param)
    return JSONResponse(body, status, headers=_headers(status, headers))


_DOMAIN: dict[type[AivbatchError], tuple[int, str]] = {
    NotFound: (404, "not_found"),
    Conflict: (409, "conflict"),
    InvalidInput: (400, "invalid_request"),
}


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: BodyTooLarge.code}


def _field(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


def allowed_methods(request: Request) -> str:
    """Every method some route serves at this path (Starlette names only the first route's)."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.router.routes):
        match, _ = route.matches(request.scope)
        if match != Match.NONE:
            methods |= set(route.methods or ())
    return ", ".join(sorted(methods))


def outage_response(outages: Outages, exc: BaseException) -> JSONResponse | None:
    """The 503 for an error that says SQL or Redis is unavailable; None for any other."""
    service = service_of(exc)
    if service is None:
        return None
    outages.down(service, exc)
    return Unavailable(service).response()


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into the one shape."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(AivbatchError)
    async def _domain_error(_request: Request, exc: AivbatchError) -> JSONResponse:
        status, code = next(
            (v for cls, v in _DOMAIN.items() if isinstance(exc, cls)), (400, "invalid_request")
        )
        return error_response(status, code, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [f"{_field(tuple(e['loc']))}: {e['msg']}" for e in exc.errors()]
        first = _field(tuple(exc.errors()[0]["loc"])) if exc.errors() else None
        return error_response(400, "invalid_request", "; ".join(problems[:10]), first)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = allowed_methods(request)
        if exc.status_code == 413:
            # The client may still be sending: closing is the only way to stop it.
            headers["Connection"] = "close"
        return error_response(exc.status_code, code, str(exc.detail), headers=headers)

    # SQL or Redis unavailable is answered 503 by api/context.py, which every error that
    # no handler here takes passes through before this last one (after which the server
    # would log a traceback for every request of an outage).
    @app.exception_handler(Exception)
    async def _unexpected(request: Request, _exc: Exception) -> JSONResponse:
        # The server logs the traceback after this; this line ties it to the request.
        request_id = request.scope.get("state", {}).get("request_id", "-")
        log.error("%s %s failed (request_id=%s)", request.method, request.url.path, request_id)
        return error_response(500, "internal_error", "internal error; the server log has details")
