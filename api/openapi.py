"""The OpenAPI document as the contract: every status a route answers, in the error shape.

Routes declare their error statuses with ``errors(...)``. FastAPI's own 422
``HTTPValidationError`` is dropped (this API answers a bad field with 400 in the one error
shape); an optional header or query parameter is declared without null (it is left out,
never sent as null); request bodies that routes read themselves (streamed, not parsed
whole) are described by their models; every answer declares ``x-request-id``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel

from api.responses import ErrorResponse

_DESCRIPTIONS = {
    400: "A field, line or request is unusable; `param` or `lines` names it.",
    401: "No key, an unknown key or a revoked key.",
    404: "No such object for this tenant.",
    409: "The object's state does not allow it.",
    413: "The body, or one request, is over its size limit.",
    422: "Too many requests in the batch, or a custom_id used twice.",
    429: "A rate limit or a tenant quota: retry after `Retry-After` seconds.",
    503: "SQL or Redis is unavailable: retry after `Retry-After` seconds.",
}
_RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "required": True,
        "schema": {"type": "integer"},
    }
}
_HEADERS = {
    401: {
        "WWW-Authenticate": {
            "description": "The scheme to authenticate with.",
            "required": True,
            "schema": {"type": "string"},
        }
    },
    429: _RETRY_AFTER,
    503: _RETRY_AFTER,
}
REQUEST_ID = {
    "x-request-id": {
        "description": "This request's id, also in the server's log lines about it.",
        "required": True,
        "schema": {"type": "string"},
    }
}
# Every route that needs a key can answer these.
AUTHENTICATED = (401, 429, 503)


def errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` entry declaring these error statuses, in the error shape."""
    declared: dict[int | str, dict[str, Any]] = {}
    for status in sorted(set(statuses)):
        entry: dict[str, Any] = {"model": ErrorResponse, "description": _DESCRIPTIONS[status]}
        if status in _HEADERS:
            entry["headers"] = dict(_HEADERS[status])
        declared[status] = entry
    return declared


def json_body(model: type[BaseModel], description: str) -> dict[str, Any]:
    """``openapi_extra`` describing a JSON body the route reads itself."""
    return {
        "requestBody": {
            "required": True,
            "description": description,
            "content": {"application/json": {"schema": {"$ref": _ref(model.__name__)}}},
        },
        "x-aivbatch-body-model": model.__name__,
    }


def _ref(name: str) -> str:
    return f"#/components/schemas/{name}"


def _body_models(app: FastAPI) -> dict[str, type[BaseModel]]:
    models: dict[str, type[BaseModel]] = getattr(app.state, "body_models", {})
    return models


def register_body(app: FastAPI, model: type[BaseModel]) -> None:
    """Publish ``model``'s schema (for a body described with ``json_body``)."""
    app.state.body_models = {**_body_models(app), model.__name__: model}


def install(app: FastAPI) -> None:
    """Serve the contract: FastAPI's document, adjusted as the module docstring says."""

    def document() -> dict[str, Any]:
        if app.openapi_schema is not None:
            return app.openapi_schema
        spec = get_openapi(
            title=app.title,
            version=app.version,
            summary=app.summary,
            description=app.description,
            routes=app.routes,
        )
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        for model in _body_models(app).values():
            schema = model.model_json_schema(ref_template=_ref("{model}"))
            schemas.update(schema.pop("$defs", {}))
            schemas[model.__name__] = schema
        for path in spec["paths"].values():
            for operation in path.values():
                operation.pop("x-aivbatch-body-model", None)
                _adjust(operation["responses"])
                for parameter in operation.get("parameters", []):
                    _not_null(parameter)
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        app.openapi_schema = spec
        return spec

    app.openapi = document  # type: ignore[method-assign]


def _not_null(parameter: dict[str, Any]) -> None:
    """An optional header or query parameter is left out, never sent as null: say so."""
    schema = parameter.get("schema", {})
    options = [s for s in schema.get("anyOf", []) if s.get("type") != "null"]
    if len(options) == 1 and len(options) < len(schema["anyOf"]):
        parameter["schema"] = {**{k: v for k, v in schema.items() if k != "anyOf"}, **options[0]}


def _adjust(responses: dict[str, Any]) -> None:
    validation = responses.get("422", {})
    schema = validation.get("content", {}).get("application/json", {}).get("schema", {})
    if schema.get("$ref", "").endswith("/HTTPValidationError"):
        del responses["422"]
    for response in responses.values():
        response.setdefault("headers", {}).update(REQUEST_ID)
