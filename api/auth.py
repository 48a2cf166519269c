"""Who is calling, settled before anything reads the request body.

FastAPI reads and parses a body before it runs a route's dependencies, so the key is
checked here, in ASGI middleware: a call to ``/v1`` without a valid key costs one indexed
lookup and is answered 401 with its body unread. Then the limits apply: failed
authentications per client address, requests per second per key (api/ratelimits.py).
The tenant goes into the request's state for the routes (``TenantDep``), and so does the
body limit: a caller with a key may send ``AIVBATCH_MAX_BODY_BYTES``, anyone else only
``AIVBATCH_ANONYMOUS_MAX_BODY_BYTES``.
"""

from __future__ import annotations

from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPBearer
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import ApiError, TooManyRequests, Unauthorized, outage_response
from api.ratelimits import Window
from api.services import Services
from models import apikeys
from models.types import utcnow

# The tenant of every caller when authentication is turned off.
DEFAULT_TENANT = "default"
KEYED_PREFIX = "/v1"

# Documents the scheme in /openapi.json; the check itself is the middleware's.
bearer = HTTPBearer(
    scheme_name="bearer",
    bearerFormat="aivb-…",
    description="An API key made with `aivbatch keys create --tenant NAME`.",
    auto_error=False,
)


def needs_key(path: str) -> bool:
    """Whether a path is one of the tenant routes (everything under /v1)."""
    return path == KEYED_PREFIX or path.startswith(KEYED_PREFIX + "/")


def _key_of(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, secret = bytes(value).decode("latin-1").partition(" ")
            if scheme.lower() == "bearer" and secret.strip():
                return secret.strip()
            return None
    return None


def _has_body(scope: Scope) -> bool:
    headers = dict(scope["headers"])
    return headers.get(b"content-length", b"0") != b"0" or b"transfer-encoding" in headers


def lookup(services: Services, secret: str) -> tuple[str, str] | None:
    """The (key id, tenant) of a live key, recording its use; None for no such key."""
    with services.db.read() as session:
        key = apikeys.authenticate(session, secret)
    if key is None:
        return None
    now = utcnow()
    if apikeys.touch_due(key, now=now):
        with services.db.write() as session:
            apikeys.touch(session, key.id, now=now)
    return key.id, key.tenant_id


def key_is_live(services: Services, key_id: str) -> bool:
    """Whether the key still works (not revoked, not deleted)."""
    with services.db.read() as session:
        return apikeys.is_live(session, key_id)


class Authenticate:
    """ASGI middleware: settles the caller's tenant and body limit, enforces rate limits."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        services: Services = scope["app"].state.services
        settings = services.settings
        state = scope.setdefault("state", {})
        if not needs_key(scope["path"]):
            state["body_limit"] = settings.anonymous_max_body_bytes
            await self.app(scope, receive, send)
            return
        try:
            key_id, tenant = await self._caller(services, scope)
            window = await services.rates.request(key_id)
            if window is not None and not window.allowed:
                raise TooManyRequests(
                    f"over {window.limit} requests per second for this key"
                    " (AIVBATCH_KEY_REQUESTS_PER_SECOND)",
                    retry_after=window.retry_after,
                    headers=window.headers(),
                )
        except ApiError as exc:
            await self._refuse(exc.response(), scope, receive, send)
            return
        except Exception as exc:
            unavailable = outage_response(services.outages, exc)
            if unavailable is None:
                raise
            await self._refuse(unavailable, scope, receive, send)
            return
        state.update(tenant=tenant, key_id=key_id, body_limit=settings.max_body_bytes)
        await self.app(scope, receive, _with_headers(send, window))

    async def _caller(self, services: Services, scope: Scope) -> tuple[str, str]:
        if not services.settings.auth_enabled:
            return DEFAULT_TENANT, DEFAULT_TENANT
        address = (scope.get("client") or ("unknown", 0))[0]
        blocked = await services.rates.auth_blocked(address)
        if blocked is not None:
            raise TooManyRequests(
                f"too many failed authentications from {address}"
                " (AIVBATCH_AUTH_FAILURES_PER_MINUTE)",
                retry_after=blocked.retry_after,
                code="too_many_failed_authentications",
            )
        secret = _key_of(scope)
        if secret is None:
            raise Unauthorized("an API key is required: send 'Authorization: Bearer <key>'")
        found = await run_in_threadpool(lookup, services, secret)
        if found is None:
            await services.rates.auth_failed(address)
            raise Unauthorized(
                "the API key is not valid (unknown or revoked). Keys belong to one database:"
                " make them with `aivbatch keys create` against the database this API uses"
                " (the same AIVBATCH_DATABASE_URL, or AIVBATCH_DATA_DIR for the SQLite file)"
            )
        return found

    async def _refuse(self, response: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
        # The body is never read; a client still sending it gets the answer and a close.
        if _has_body(scope):
            response.headers["Connection"] = "close"  # type: ignore[attr-defined]
        await response(scope, receive, send)


def _with_headers(send: Send, window: Window | None) -> Send:
    if window is None:
        return send
    extra = [(k.encode(), v.encode()) for k, v in window.headers().items()]

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return sending
