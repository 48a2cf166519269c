"""Dependencies of the routes: the services, and the tenant of the caller's API key."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials

from api.auth import DEFAULT_TENANT, bearer
from api.errors import Unauthorized
from api.services import Services


def get_services(request: Request) -> Services:
    """The services built at startup."""
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


def get_tenant(
    request: Request,
    _credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> str:
    """The tenant of the caller's key, settled before the body was read (api/auth.py)."""
    tenant = request.scope.get("state", {}).get("tenant")
    if tenant is None:
        raise Unauthorized("an API key is required: send 'Authorization: Bearer <key>'")
    return str(tenant)


def get_key_id(request: Request) -> str:
    """The id of the caller's key (the tenant's name when authentication is off)."""
    return str(request.scope.get("state", {}).get("key_id", DEFAULT_TENANT))


TenantDep = Annotated[str, Depends(get_tenant)]
KeyIdDep = Annotated[str, Depends(get_key_id)]
