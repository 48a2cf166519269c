"""Counters of job attempts that every worker adds to one Redis hash, and the API reads.

Prometheus scrapes the API, not each worker, so the workers pool their figures in Redis:
upstream errors by kind, and histograms of time to first chunk and of total duration of
succeeded attempts. Losing the hash (a Redis restart) reads as a counter reset, which
Prometheus's ``rate()`` already handles.

Fields of ``{prefix}:v1:metrics``: ``upstream_errors:{code}``, ``upstream_attempts:{upstream}:
{status}`` (attempts that reached an upstream, by how they ended), and for each histogram
``{name}:le:{bound}`` (observations at or below ``bound`` seconds and above the previous
bound; ``+Inf`` for the rest), ``{name}:sum`` and ``{name}:count``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from models.jobs import Outcome
from models.states import JobStatus

FIRST_CHUNK = "first_chunk_seconds"
DURATION = "duration_seconds"
HISTOGRAMS = (FIRST_CHUNK, DURATION)
BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)
UPSTREAM_ERRORS = "upstream_errors"
UPSTREAM_ATTEMPTS = "upstream_attempts"
# Errors that are about the job, not the upstream; they are not counted as upstream errors.
NOT_UPSTREAM = {"batch_cancelled", "batch_expired", "worker_shutdown", "internal_error"}


def _bucket(seconds: float) -> str:
    for bound in BUCKETS:
        if seconds <= bound:
            return repr(bound)
    return "+Inf"


def increments(outcome: Outcome) -> tuple[dict[str, int], dict[str, float]]:
    """What one recorded attempt adds: integer counts and float sums, by field."""
    counts: dict[str, int] = {}
    sums: dict[str, float] = {}
    if outcome.error_code and outcome.error_code not in NOT_UPSTREAM:
        counts[f"{UPSTREAM_ERRORS}:{outcome.error_code}"] = 1
    if outcome.upstream and outcome.attempt_log:
        # The attempt's own upstream (``outcome.upstream`` is the next one's, for a retry).
        served_by = outcome.attempt_log[-1].get("upstream") or outcome.upstream
        counts[f"{UPSTREAM_ATTEMPTS}:{served_by}:{outcome.status}"] = 1
    if outcome.status == JobStatus.SUCCEEDED:
        for name, ms in ((FIRST_CHUNK, outcome.first_chunk_ms), (DURATION, outcome.duration_ms)):
            if ms is None:
                continue
            counts[f"{name}:le:{_bucket(ms / 1000)}"] = 1
            counts[f"{name}:count"] = 1
            sums[f"{name}:sum"] = ms / 1000
    return counts, sums


@dataclass
class Histogram:
    """Cumulative buckets, as Prometheus exposes them."""

    buckets: list[tuple[str, float]] = field(default_factory=list)
    total: float = 0.0
    count: float = 0.0


@dataclass
class Snapshot:
    """The pooled figures, parsed."""

    upstream_errors: dict[str, float] = field(default_factory=dict)
    # (upstream, status) -> attempts
    upstream_attempts: dict[tuple[str, str], float] = field(default_factory=dict)
    histograms: dict[str, Histogram] = field(default_factory=dict)


def parse(fields: dict[str, str]) -> Snapshot:
    """The hash's fields as counters and cumulative histograms."""
    snap = Snapshot()
    for name, value in fields.items():
        if name.startswith(UPSTREAM_ERRORS + ":"):
            snap.upstream_errors[name.split(":", 1)[1]] = float(value)
        elif name.startswith(UPSTREAM_ATTEMPTS + ":"):
            upstream, _, status = name.split(":", 1)[1].rpartition(":")
            snap.upstream_attempts[(upstream, status)] = float(value)
    for name in HISTOGRAMS:
        running = 0.0
        hist = Histogram()
        for bound in [*(repr(b) for b in BUCKETS), "+Inf"]:
            running += float(fields.get(f"{name}:le:{bound}", 0))
            hist.buckets.append((bound, running))
        hist.total = float(fields.get(f"{name}:sum", 0.0))
        hist.count = float(fields.get(f"{name}:count", 0))
        if not math.isclose(hist.count, running):
            hist.count = running  # a partial write: the buckets are the truth
        snap.histograms[name] = hist
    return snap
