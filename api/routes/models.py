"""Models (OpenAI's Models API): what the routing table serves, so ``client.models.list()``
works."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from api.deps import ServicesDep, TenantDep
from api.errors import ApiError
from api.openapi import AUTHENTICATED, errors
from api.responses import ModelList, ModelObject
from models.routing import serves

router = APIRouter(prefix="/v1/models", tags=["models"])


class ModelNotFound(ApiError):
    """No upstream serves the model."""

    status = 404
    code = "model_not_found"


@router.get("", summary="List models", responses=errors(*AUTHENTICATED))
def list_models(services: ServicesDep, _tenant: TenantDep) -> ModelList:
    """Every model served by name, with the upstream that serves it (the first that does)."""
    created = services.routing_loaded_at
    data = [
        ModelObject(id=name, created=created, owned_by=upstream.name)
        for name, upstream in services.routing.served()
    ]
    return ModelList(data=data)


@router.get("/{model}", summary="Retrieve a model", responses=errors(400, 404, *AUTHENTICATED))
def retrieve_model(
    model: Annotated[str, Path(description="A model name (glob patterns match too).")],
    services: ServicesDep,
    _tenant: TenantDep,
) -> ModelObject:
    """The model, if an upstream serves it (by name or by one of its patterns)."""
    for upstream in services.routing:
        if serves(upstream, model):
            return ModelObject(id=model, created=services.routing_loaded_at, owned_by=upstream.name)
    raise ModelNotFound(
        f"model {model!r} is not served here; models served: {services.routing.served_text()}",
        param="model",
    )
