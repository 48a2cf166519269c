"""Dependencies of the routes: the services, and the tenant of the caller's API key."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from api.errors import Unauthorized
from api.services import Services
from models import apikeys
from models.types import utcnow

# The tenant of every caller when authentication is turned off.
DEFAULT_TENANT = "default"


def get_services(request: Request) -> Services:
    """The services built at startup."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_tenant(request: Request, services: ServicesDep) -> str:
    """The tenant of the bearer key (or the default tenant when auth is off)."""
    if not services.settings.auth_enabled:
        return DEFAULT_TENANT
    scheme, _, secret = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthorized("an API key is required: send 'Authorization: Bearer <key>'")
    with services.db.read() as session:
        key = apikeys.authenticate(session, secret.strip())
    if key is None:
        raise Unauthorized("the API key is not valid (unknown or revoked)")
    now = utcnow()
    if apikeys.touch_due(key, now=now):
        with services.db.write() as session:
            apikeys.touch(session, key.id, now=now)
    return key.tenant_id


TenantDep = Annotated[str, Depends(get_tenant)]
