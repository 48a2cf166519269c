"""Deterministic answers of the OpenAI protocol: prose, a JSON object or a tool call.

Tokens are words: an answer's tokens are its words, each with the whitespace before it
(``The``, `` quiet``, `` worker``...), so ``completion_tokens`` is the answer's word count
(for a tool call, the words of its arguments). ``stop`` cuts the text before the first
stop string (finish ``stop``); ``max_tokens`` then keeps that many tokens (finish
``length``). The same seed gives the same answer, and a cut answer is a prefix of the
uncut one. The answer is then split into at most ``chunks`` pieces, one per network write.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from emulator.openai.schema import example
from emulator.text import answer_text

_TOKEN = re.compile(r"\s*\S+|\s+$")
# Alternatives offered in top_logprobs.
_ALTERNATIVES = (
    "the", "a", "one", "this", "river", "garden", "city", "road", "story", "light",
    "and", "then", "still", "often", "slowly", "today", "again", "here", "there", "now",
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class Shape:
    """What an answer looks like besides its seed (hashable: answers are cached by it)."""

    cyrillic: bool = False
    max_tokens: int | None = None
    stop: tuple[str, ...] = ()
    top_logprobs: int | None = None  # None: no logprobs; else alternatives per token
    json_schema: str | None = None  # canonical JSON of the schema; "" for any JSON object
    tool_name: str | None = None
    tool_parameters: str = "{}"  # canonical JSON of the tool's parameters schema
    lead: str = ""  # before the text: a completion continues its prompt after a space


@dataclass(frozen=True, slots=True)
class Answer:
    """One choice's answer: its text in pieces, how it ended, its logprobs by piece."""

    pieces: tuple[str, ...]
    text: str
    tokens: int
    finish_reason: str  # "stop", "length" or "tool_calls"
    tool_call_id: str | None
    logprobs: tuple[tuple[dict[str, Any], ...], ...] | None

    @property
    def entries(self) -> list[dict[str, Any]]:
        """Every token's logprob entry, in order (empty without logprobs)."""
        return [e for piece in self.logprobs or () for e in piece]


def _sentence_source(seed: int, cyrillic: bool) -> Any:
    counter = iter(range(1 << 30))
    return lambda: answer_text(seed * 31 + next(counter), cyrillic, 40)


def _body(seed: int, shape: Shape, target: int) -> tuple[str, str]:
    """The whole text and its natural finish reason (stop strings cut text, not tool calls)."""
    rng = random.Random(seed)
    if shape.tool_name is not None:
        sentence = _sentence_source(seed, shape.cyrillic)
        args = example(json.loads(shape.tool_parameters), rng, sentence)
        return json.dumps(args if isinstance(args, dict) else {}, ensure_ascii=False), "tool_calls"
    if shape.json_schema is None:
        text = shape.lead + answer_text(seed, shape.cyrillic, target)
    else:
        if shape.json_schema:
            sentence = _sentence_source(seed, shape.cyrillic)
            value = example(json.loads(shape.json_schema), rng, sentence)
        else:
            value = {"answer": answer_text(seed, shape.cyrillic, target)}
        text = json.dumps(
            value if isinstance(value, dict) else {"answer": value}, ensure_ascii=False
        )
    found = [i for i in (text.find(s) for s in shape.stop) if i >= 0]
    return (text[: min(found)] if found else text), "stop"


def _logprobs(seed: int, tokens: list[str], top: int) -> list[dict[str, Any]]:
    rng = random.Random(seed ^ 0x10B)
    entries = []
    for token in tokens:
        # Mostly confident, now and then not: like a real model's distribution.
        logprob = -round(rng.random() ** 4 * 3, 5)
        alternatives = []
        if top:
            lead = token[: len(token) - len(token.lstrip())]
            words = [w for w in rng.sample(_ALTERNATIVES, top) if lead + w != token][: top - 1]
            alternatives.append({"token": token, "logprob": logprob, "bytes": list(token.encode())})
            for rank, word in enumerate(words, 1):
                alt = lead + word
                value = round(logprob - rank - rng.random(), 5)
                alternatives.append({"token": alt, "logprob": value, "bytes": list(alt.encode())})
        entries.append(
            {
                "token": token,
                "logprob": logprob,
                "bytes": list(token.encode()),
                "top_logprobs": alternatives,
            }
        )
    return entries


def _groups(count: int, parts: int) -> list[tuple[int, int]]:
    parts = min(parts, count)
    return [(i * count // parts, (i + 1) * count // parts) for i in range(parts)]


@lru_cache(maxsize=4096)
def answer(seed: int, shape: Shape, chunks: int, chunk_size: int) -> Answer:
    """The answer for ``seed`` in this shape, in at most ``chunks`` pieces of ~chunk_size bytes."""
    text, finish = _body(seed, shape, chunks * chunk_size)
    tokens = _TOKEN.findall(text)
    if shape.max_tokens is not None and len(tokens) > shape.max_tokens:
        tokens = tokens[: shape.max_tokens]
        text, finish = "".join(tokens), "length"
    groups = _groups(len(tokens), chunks)
    logprobs = None
    if shape.top_logprobs is not None and shape.tool_name is None:
        entries = _logprobs(seed, tokens, shape.top_logprobs)
        logprobs = tuple(tuple(entries[a:b]) for a, b in groups)
    call_id = None
    if shape.tool_name is not None:
        call_id = "call_" + hashlib.sha256(seed.to_bytes(8, "big")).hexdigest()[:24]
    return Answer(
        pieces=tuple("".join(tokens[a:b]) for a, b in groups),
        text=text,
        tokens=len(tokens),
        finish_reason=finish,
        tool_call_id=call_id,
        logprobs=logprobs,
    )
