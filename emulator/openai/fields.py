"""Validation of single request fields, refused with OpenAI's messages and codes."""

from __future__ import annotations

import math
from typing import Any

from emulator.openai.errors import OpenAIError, bad_type, bad_value, missing


def body_object(data: Any) -> dict[str, Any]:
    """The body must be a JSON object."""
    if not isinstance(data, dict):
        raise OpenAIError(
            "We could not parse the JSON body of your request: it must be a JSON object."
        )
    return data


def model(data: dict[str, Any]) -> str:
    """The model's id: 400 if missing or not a string."""
    value = data.get("model")
    if value is None:
        raise OpenAIError(
            "You must provide a model parameter.", "model", "missing_required_parameter"
        )
    if not isinstance(value, str):
        raise bad_type("model", "string", value)
    return value


def served(model_id: str, models: tuple[str, ...]) -> None:
    """404 ``model_not_found`` unless the emulator serves the model."""
    if model_id not in models:
        raise OpenAIError(
            f"The model `{model_id}` does not exist or you do not have access to it. "
            f"Models served: {', '.join(models)}.",
            "model",
            "model_not_found",
            status=404,
        )


def integer(
    data: dict[str, Any], name: str, low: int, high: int, default: int | None = None
) -> int | None:
    """An optional integer within [low, high]; null or absent gives ``default``."""
    value = data.get(name)
    if value is None:
        return default
    # bool is an int to Python, not a number to a JSON client.
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            raise bad_type(name, "integer", value)
    if value < low:
        raise OpenAIError(
            f"Invalid '{name}': integer below minimum value. "
            f"Expected a value >= {low}, but got {value} instead.",
            name,
            "integer_below_min_value",
        )
    if value > high:
        raise OpenAIError(
            f"Invalid '{name}': integer above maximum value. "
            f"Expected a value <= {high}, but got {value} instead.",
            name,
            "integer_above_max_value",
        )
    return value


def number(data: dict[str, Any], name: str, low: float, high: float) -> float | None:
    """An optional number within [low, high]."""
    value = data.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise bad_type(name, "number", value)
    if not (math.isfinite(value) and low <= value <= high):
        raise bad_value(name, f"expected a number from {low:g} to {high:g}, got {value}.")
    return float(value)


def boolean(data: dict[str, Any], name: str) -> bool:
    """An optional boolean (absent or null: false)."""
    value = data.get(name)
    if value is None:
        return False
    if not isinstance(value, bool):
        raise bad_type(name, "boolean", value)
    return value


def string(data: dict[str, Any], name: str, required: bool = False, param: str = "") -> str | None:
    """An optional (or required) string; ``param`` names it in errors (default: ``name``)."""
    value = data.get(name)
    param = param or name
    if value is None:
        if required:
            raise missing(param)
        return None
    if not isinstance(value, str):
        raise bad_type(param, "string", value)
    return value


def obj(data: dict[str, Any], name: str, param: str = "") -> dict[str, Any] | None:
    """An optional JSON object."""
    value = data.get(name)
    if value is None:
        return None
    if not isinstance(value, dict):
        raise bad_type(param or name, "object", value)
    return value


def stop(data: dict[str, Any]) -> tuple[str, ...]:
    """``stop``: null, a string, or a list of up to 4 strings."""
    value = data.get("stop")
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,) if value else ()
    if not isinstance(value, list):
        raise bad_type("stop", "string", value)
    if len(value) > 4:
        raise OpenAIError(
            f"Invalid 'stop': array too long. Expected at most 4 items, got {len(value)}.",
            "stop",
            "array_above_max_length",
        )
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise bad_type(f"stop[{i}]", "string", item)
    return tuple(s for s in value if s)


def stream_options(data: dict[str, Any], stream: bool) -> bool:
    """``stream_options.include_usage``; the options need ``stream: true``."""
    options = obj(data, "stream_options")
    if options is None:
        return False
    if not stream:
        raise bad_value(
            "stream_options", "stream_options is only allowed when 'stream' is enabled."
        )
    return boolean(options, "include_usage")
