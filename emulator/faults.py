"""Per-request markers and the deterministic choice of a fault.

A marker anywhere in a message's text (for the OpenAI protocol also a completion's
``prompt`` or a response's ``input``) configures that one request::

    [[emulator chunks=5 delay_ms=10 fault=429 times=2 retry_after=3 tag=j7]]

Keys, both protocols: chunks, chunk_size, ttfb_ms, delay_ms; fault, one of

- ``429`` (Retry-After seconds and, for /v1, ``retry-after-ms``), ``500``, ``503``, ``400``,
  ``401``: a JSON error answer with that status;
- ``403``: an anti-bot challenge page; ``html``: such a page served with 200;
- ``reset``: the connection dropped mid-body; ``stall``: silence mid-body, then the rest;
- ``error_event``: for /v1 streams, an error event mid-stream (a ``data: {"error": ...}``
  event, or ``event: error`` for /v1/responses) then the end; a /v1 answer that is not
  streamed gets a 500 instead, and the Aivvm protocol, which has no events, a reset;

times (fault only the first N calls of the same request, then answer), retry_after
(seconds, 429 and 503), after (chunks sent before a mid-body fault; default half),
stall_seconds, tag (a label counted in the stats).

OpenAI protocol only: sse (comma list of framing variations, each still valid SSE: crlf,
comments, multiline, split; see ``emulator.openai.sse``), tool (1: ``tool_choice: "auto"``
calls the first tool), cached_tokens and reasoning_tokens (reported in the usage details).
Several markers merge; a later key wins.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, fields

from emulator.config import FAULT_KINDS, EmulatorSettings

MARKER = re.compile(r"\[\[emulator(?:\s+([^\]]*?))?\s*\]\]")
# Framing variations of server-sent events a conforming parser reads to the same result.
SSE_VARIATIONS = ("crlf", "comments", "multiline", "split")
_TAG = re.compile(r"[A-Za-z0-9_.:\-]{1,64}")
# Beyond this many remembered requests the oldest are forgotten, bounding memory in long runs.
_MAX_REMEMBERED = 200_000


class MarkerError(ValueError):
    """A marker key or value the emulator does not accept."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(message)
        self.key = key


@dataclass(frozen=True, slots=True)
class Overrides:
    """What a request's markers set; None leaves the server's setting."""

    chunks: int | None = None
    chunk_size: int | None = None
    ttfb_ms: float | None = None
    delay_ms: float | None = None
    fault: str | None = None
    times: int | None = None
    retry_after: int | None = None
    after: int | None = None
    stall_seconds: float | None = None
    tag: str | None = None
    sse: frozenset[str] = frozenset()
    tool: int | None = None
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None


NO_OVERRIDES = Overrides()


def _integer(low: int, high: int) -> Callable[[str], int]:
    def parse(raw: str) -> int:
        value = int(raw)
        if not low <= value <= high:
            raise ValueError
        return value

    parse.__doc__ = f"an integer {low}..{high}"
    return parse


def _number(low: float, high: float) -> Callable[[str], float]:
    def parse(raw: str) -> float:
        value = float(raw)
        if not low <= value <= high:  # also rejects nan
            raise ValueError
        return value

    parse.__doc__ = f"a number {low:g}..{high:g}"
    return parse


def _fault(raw: str) -> str:
    if raw not in FAULT_KINDS:
        raise ValueError
    return raw


def _tag(raw: str) -> str:
    if not _TAG.fullmatch(raw):
        raise ValueError
    return raw


def _sse(raw: str) -> frozenset[str]:
    kinds = frozenset(raw.split(","))
    if not kinds <= frozenset(SSE_VARIATIONS):
        raise ValueError
    return kinds


_fault.__doc__ = f"one of {', '.join(FAULT_KINDS)}"
_sse.__doc__ = f"a comma list of {', '.join(SSE_VARIATIONS)}"
_tag.__doc__ = "1-64 of A-Z a-z 0-9 _ . : -"

_PARSERS: dict[str, Callable[[str], object]] = {
    "chunks": _integer(1, 10_000),
    "chunk_size": _integer(1, 65_536),
    "ttfb_ms": _number(0, 600_000),
    "delay_ms": _number(0, 600_000),
    "fault": _fault,
    "times": _integer(0, 1_000_000),
    "retry_after": _integer(0, 86_400),
    "after": _integer(0, 10_000),
    "stall_seconds": _number(0, 86_400),
    "tag": _tag,
    "sse": _sse,
    "tool": _integer(0, 1),
    "cached_tokens": _integer(0, 100_000_000),
    "reasoning_tokens": _integer(0, 100_000_000),
}
assert set(_PARSERS) == {f.name for f in fields(Overrides)}


def parse_markers(contents: Iterable[str]) -> Overrides:
    """The overrides set by every marker in ``contents``; raises MarkerError naming the key."""
    found: dict[str, object] = {}
    for content in contents:
        if "[[emulator" not in content:
            continue
        for match in MARKER.finditer(content):
            for token in (match.group(1) or "").split():
                key, sep, raw = token.partition("=")
                parser = _PARSERS.get(key)
                if parser is None or not sep:
                    known = ", ".join(_PARSERS)
                    raise MarkerError(
                        key, f"emulator marker: unknown key or no '=' in {token!r}; keys: {known}"
                    )
                try:
                    found[key] = parser(raw)
                except ValueError:
                    raise MarkerError(
                        key, f"emulator marker: {key} must be {parser.__doc__}, not {raw!r}"
                    ) from None
    return Overrides(**found) if found else NO_OVERRIDES  # type: ignore[arg-type]


def strip_markers(text: str) -> str:
    """The text without its markers (they must not sway the script of the answer)."""
    return MARKER.sub("", text) if "[[emulator" in text else text


class FaultBook:
    """Counts calls per request fingerprint and decides, deterministically, which to fault."""

    def __init__(self, settings: EmulatorSettings) -> None:
        self._settings = settings
        # fingerprint -> [calls seen, rate faults played]
        self._seen: dict[bytes, list[int]] = {}

    def clear(self) -> None:
        """Forget every fingerprint (calls and faults start from zero again)."""
        self._seen.clear()

    def decide(self, fingerprint: bytes, overrides: Overrides) -> str | None:
        """Record one call of this request; returns the fault to play, or None to answer."""
        entry = self._seen.get(fingerprint)
        if entry is None:
            if len(self._seen) >= _MAX_REMEMBERED:
                del self._seen[next(iter(self._seen))]
            entry = self._seen[fingerprint] = [0, 0]
        calls = entry[0]
        entry[0] += 1
        if overrides.fault is not None:
            # A marker's fault rules this request: no rate fault on top of it.
            times = overrides.times
            return overrides.fault if times is None or calls < times else None
        settings = self._settings
        if settings.fault_rate <= 0 or entry[1] >= settings.fault_times:
            return None
        digest = hashlib.sha256(fingerprint + calls.to_bytes(8, "big")).digest()
        if int.from_bytes(digest[:8], "big") / 2**64 >= settings.fault_rate:
            return None
        entry[1] += 1
        return settings.faults[int.from_bytes(digest[8:16], "big") % len(settings.faults)]
