"""``POST /v1/embeddings``: deterministic unit vectors, as floats or base64.

``input`` is a string, a list of strings, a token array or a list of token arrays (at most
2048 inputs, none empty). Each vector depends on the model and the input only, has
``dimensions`` components (default 1536) and length 1; ``encoding_format: "base64"`` sends
it as little-endian float32 bytes in base64, as OpenAI does. Usage: the words of each
string (markers not counted), the length of each token array, as ``prompt_tokens`` and
``total_tokens``.
"""

from __future__ import annotations

import base64
import hashlib
import math
import random
import struct
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from emulator.faults import Overrides, strip_markers
from emulator.openai import calls, fields
from emulator.openai.errors import OpenAIError, bad_type, bad_value, missing
from emulator.openai.messages import words

DEFAULT_DIMENSIONS = 1536
MAX_INPUTS = 2048


@dataclass(frozen=True, slots=True)
class EmbeddingCall:
    """A valid embeddings call."""

    model: str
    inputs: tuple[str, ...]  # each input as text (a token array as its numbers)
    tokens: int
    dimensions: int
    base64: bool
    overrides: Overrides
    fingerprint: bytes


def _is_tokens(value: Any) -> bool:
    return isinstance(value, list) and all(
        isinstance(t, int) and not isinstance(t, bool) for t in value
    )


def _inputs(data: dict[str, Any]) -> list[tuple[str, int]]:
    value = data.get("input")
    if value is None:
        raise missing("input")
    if isinstance(value, str) or _is_tokens(value):
        value = [value]
    if not isinstance(value, list):
        raise bad_type("input", "string", value)
    if not value or len(value) > MAX_INPUTS:
        raise OpenAIError(
            f"Invalid 'input': expected from 1 to {MAX_INPUTS} inputs, got {len(value)}.",
            "input",
            "invalid_value",
        )
    found = []
    for i, item in enumerate(value):
        param = f"input[{i}]" if len(value) > 1 else "input"
        if isinstance(item, str):
            found.append((item, words(item)))
        elif _is_tokens(item):
            found.append((" ".join(map(str, item)), len(item)))
        else:
            raise bad_type(param, "string", item)
        if not item:
            raise bad_value(param, "an input must not be empty.")
    return found


def parse_embeddings(data: Any, served: tuple[str, ...]) -> EmbeddingCall:
    """Validate an embeddings body; OpenAIError naming the field."""
    data = fields.body_object(data)
    model = fields.model(data)
    inputs = _inputs(data)
    dimensions = fields.integer(data, "dimensions", 1, 8192, default=DEFAULT_DIMENSIONS)
    encoding = fields.string(data, "encoding_format") or "float"
    if encoding not in ("float", "base64"):
        raise bad_value("encoding_format", "supported values are 'float' and 'base64'.")
    fields.string(data, "user")
    overrides = calls.markers(text for text, _ in inputs)
    fields.served(model, served)
    return EmbeddingCall(
        model=model,
        inputs=tuple(strip_markers(text) for text, _ in inputs),
        tokens=sum(tokens for _, tokens in inputs),
        dimensions=dimensions or DEFAULT_DIMENSIONS,
        base64=encoding == "base64",
        overrides=overrides,
        fingerprint=calls.fingerprint("embeddings", data),
    )


@lru_cache(maxsize=4096)
def vector(model: str, text: str, dimensions: int) -> tuple[float, ...]:
    """The unit vector of ``text`` under ``model``."""
    digest = hashlib.sha256(f"{model}\0{text}".encode()).digest()
    rng = random.Random(int.from_bytes(digest[:8], "big"))
    values = [rng.gauss(0.0, 1.0) for _ in range(dimensions)]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return tuple(v / norm for v in values)


def whole(call: EmbeddingCall) -> dict[str, Any]:
    """The whole ``list`` of embeddings."""
    data = []
    for i, text in enumerate(call.inputs):
        values = vector(call.model, text, call.dimensions)
        embedding: Any = list(values)
        if call.base64:
            packed = struct.pack(f"<{len(values)}f", *values)
            embedding = base64.b64encode(packed).decode()
        data.append({"object": "embedding", "index": i, "embedding": embedding})
    return {
        "object": "list",
        "data": data,
        "model": call.model,
        "usage": {"prompt_tokens": call.tokens, "total_tokens": call.tokens},
    }
