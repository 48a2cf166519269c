"""What the emulator has served, for tests and benchmarks (``GET /_emulator/stats``)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from emulator.config import FAULT_KINDS

PROTOCOLS = ("aivvm", "openai")


class Stats:
    """Counters of calls of both protocols; ``completed`` counts answers sent whole.

    A call is a valid request for an answer (``POST /api/chat``, ``/v1/chat/completions``,
    ``/v1/completions``, ``/v1/embeddings``, ``/v1/responses``); listings are not calls.
    ``peak_in_flight`` is the most calls in progress at once since start or the last reset,
    a stream counting until its last byte is sent or its client leaves.
    """

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Zero every counter except ``in_flight`` (those calls are still running)."""
        self.started = 0
        self.completed = 0
        self.disconnected = 0
        self.rejected = 0
        self.in_flight = getattr(self, "in_flight", 0)
        self.peak_in_flight = self.in_flight
        self.faulted: dict[str, int] = dict.fromkeys(FAULT_KINDS, 0)
        self.started_by_tag: Counter[str] = Counter()
        self.completed_by_tag: Counter[str] = Counter()
        self.by_protocol: dict[str, Counter[str]] = {p: Counter() for p in PROTOCOLS}

    def reject(self, protocol: str) -> None:
        """A request refused before it became a call (4xx)."""
        self.rejected += 1
        self.by_protocol[protocol]["rejected"] += 1

    def start(self, tag: str | None, protocol: str = "aivvm") -> None:
        """A valid call begins."""
        self.started += 1
        self.in_flight += 1
        if self.in_flight > self.peak_in_flight:
            self.peak_in_flight = self.in_flight
        self.by_protocol[protocol]["started"] += 1
        if tag is not None:
            self.started_by_tag[tag] += 1

    def finish(self) -> None:
        """A call ends, however it ended."""
        self.in_flight -= 1

    def complete(self, tag: str | None, protocol: str = "aivvm") -> None:
        """A call's whole answer was sent."""
        self.completed += 1
        self.by_protocol[protocol]["completed"] += 1
        if tag is not None:
            self.completed_by_tag[tag] += 1

    def snapshot(self) -> dict[str, Any]:
        """The counters as JSON-ready data."""
        return {
            "started": self.started,
            "completed": self.completed,
            "faulted": dict(self.faulted),
            "disconnected": self.disconnected,
            "rejected": self.rejected,
            "in_flight": self.in_flight,
            "peak_in_flight": self.peak_in_flight,
            "started_by_tag": dict(self.started_by_tag),
            "completed_by_tag": dict(self.completed_by_tag),
            "by_protocol": {
                protocol: {key: counts[key] for key in ("started", "completed", "rejected")}
                for protocol, counts in self.by_protocol.items()
            },
        }
