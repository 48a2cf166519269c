"""What the emulator has served, for tests and benchmarks (``GET /_emulator/stats``)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from emulator.config import FAULT_KINDS


class Stats:
    """Counters of chat calls; ``completed`` counts answers whose whole body was sent."""

    def __init__(self) -> None:
        self.clear()

    def clear(self) -> None:
        """Zero every counter except ``in_flight`` (those calls are still running)."""
        self.started = 0
        self.completed = 0
        self.disconnected = 0
        self.rejected = 0
        self.in_flight = getattr(self, "in_flight", 0)
        self.faulted: dict[str, int] = dict.fromkeys(FAULT_KINDS, 0)
        self.started_by_tag: Counter[str] = Counter()
        self.completed_by_tag: Counter[str] = Counter()

    def start(self, tag: str | None) -> None:
        """A valid chat call begins."""
        self.started += 1
        self.in_flight += 1
        if tag is not None:
            self.started_by_tag[tag] += 1

    def finish(self) -> None:
        """A chat call ends, however it ended."""
        self.in_flight -= 1

    def complete(self, tag: str | None) -> None:
        """A chat answer's whole body was sent."""
        self.completed += 1
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
            "started_by_tag": dict(self.started_by_tag),
            "completed_by_tag": dict(self.completed_by_tag),
        }
