"""A deterministic example value for a JSON Schema: the object a model would fill in.

Objects get their ``required`` properties (all of them are, in OpenAI's strict mode);
``const``, ``enum``, ``anyOf``/``oneOf``/``allOf`` (the first branch), ``$ref`` into
``$defs``/``definitions``, arrays (``minItems`` items, at least one), strings (a short
sentence, or a date/time/email/uri/uuid by ``format``), integers and numbers within their
bounds, booleans and null. Anything else gets a short sentence.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

_MAX_DEPTH = 8
_FORMATS = {
    "date": "2024-05-01",
    "date-time": "2024-05-01T12:00:00Z",
    "time": "12:00:00",
    "email": "reader@example.com",
    "uri": "https://example.com/",
    "uuid": "00000000-0000-4000-8000-000000000000",
}


def _resolve(root: dict[str, Any], ref: str) -> Any:
    for prefix in ("#/$defs/", "#/definitions/"):
        if ref.startswith(prefix):
            return root.get(prefix[2:-1], {}).get(ref[len(prefix) :], {})
    return {}


def _number(schema: dict[str, Any], rng: random.Random, integer: bool) -> int | float:
    low = schema.get("minimum", schema.get("exclusiveMinimum", 1))
    high = schema.get("maximum", schema.get("exclusiveMaximum", low + 100))
    if not isinstance(low, int | float) or not isinstance(high, int | float) or high < low:
        low, high = 1, 100
    if integer:
        return rng.randint(int(low) + ("exclusiveMinimum" in schema), max(int(low), int(high)))
    return round(rng.uniform(low, high), 2)


class _Example:
    def __init__(self, root: Any, rng: random.Random, sentence: Callable[[], str]) -> None:
        self.root = root if isinstance(root, dict) else {}
        self.rng = rng
        self.sentence = sentence

    def value(self, schema: Any, depth: int) -> Any:  # noqa: C901 - one branch per keyword
        if not isinstance(schema, dict) or depth > _MAX_DEPTH:
            return self.sentence()
        if isinstance(schema.get("$ref"), str):
            return self.value(_resolve(self.root, schema["$ref"]), depth + 1)
        if "const" in schema:
            return schema["const"]
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return schema["enum"][0]
        for key in ("anyOf", "oneOf", "allOf"):
            if isinstance(schema.get(key), list) and schema[key]:
                return self.value(schema[key][0], depth + 1)
        kind = schema.get("type")
        if isinstance(kind, list):
            kind = next((k for k in kind if k != "null"), "null")
        if kind == "object" or (kind is None and isinstance(schema.get("properties"), dict)):
            return self.object(schema, depth)
        if kind == "array":
            count = schema.get("minItems", 1)
            count = count if isinstance(count, int) and 1 <= count <= 8 else 1
            return [self.value(schema.get("items", {}), depth + 1) for _ in range(count)]
        if kind == "integer":
            return _number(schema, self.rng, integer=True)
        if kind == "number":
            return _number(schema, self.rng, integer=False)
        if kind == "boolean":
            return self.rng.random() < 0.5
        if kind == "null":
            return None
        return _FORMATS.get(schema.get("format", ""), None) or self.sentence()

    def object(self, schema: dict[str, Any], depth: int) -> dict[str, Any]:
        properties = schema.get("properties")
        properties = properties if isinstance(properties, dict) else {}
        required = schema.get("required")
        names = [n for n in required if isinstance(n, str)] if isinstance(required, list) else []
        return {name: self.value(properties.get(name, {}), depth + 1) for name in names}


def example(schema: Any, rng: random.Random, sentence: Callable[[], str]) -> Any:
    """An example value of ``schema``; strings come from ``sentence()``."""
    return _Example(schema, rng, sentence).value(schema, 0)
