"""Prometheus metrics: work by state from SQL, upstream figures pooled by the workers in
Redis (models/jobmetrics.py), and this API process's own request latencies."""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping

from fastapi.concurrency import run_in_threadpool
from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from redis.exceptions import RedisError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.live import text
from api.services import Services
from models import batches, jobmetrics

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_HISTOGRAM_HELP = {
    jobmetrics.FIRST_CHUNK: "Seconds from an attempt's start to its first chunk (succeeded).",
    jobmetrics.DURATION: "Seconds from an attempt's start to its end (succeeded).",
}


class RequestMetrics:
    """ASGI middleware timing every request, labelled by route template, method, status."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        self.histogram = Histogram(
            "aivbatch_http_request_duration_seconds",
            "Seconds to answer an HTTP request (event streams: until they close).",
            ["method", "route", "status"],
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            self.histogram.labels(scope["method"], route, str(status)).observe(
                time.perf_counter() - start
            )


class _Snapshot:
    """A collector over figures read just before the scrape."""

    def __init__(
        self,
        jobs: Mapping[str, float],
        batches_: Mapping[str, float],
        pooled: jobmetrics.Snapshot,
    ) -> None:
        self.jobs = jobs
        self.batches = batches_
        self.pooled = pooled

    def collect(self) -> Iterator[Metric]:
        jobs = GaugeMetricFamily("aivbatch_jobs", "Jobs by state.", labels=["state"])
        for state, n in self.jobs.items():
            jobs.add_metric([state], n)
        yield jobs
        batches_ = GaugeMetricFamily("aivbatch_batches", "Batches by state.", labels=["state"])
        for state, n in self.batches.items():
            batches_.add_metric([state], n)
        yield batches_
        errors = CounterMetricFamily(
            "aivbatch_upstream_errors", "Failed upstream attempts by kind.", labels=["kind"]
        )
        for kind, n in sorted(self.pooled.upstream_errors.items()):
            errors.add_metric([kind], n)
        yield errors
        attempts = CounterMetricFamily(
            "aivbatch_upstream_attempts",
            "Attempts by the upstream that served them and how they ended.",
            labels=["upstream", "status"],
        )
        for (upstream, status), n in sorted(self.pooled.upstream_attempts.items()):
            attempts.add_metric([upstream, status], n)
        yield attempts
        for name, hist in self.pooled.histograms.items():
            family = HistogramMetricFamily(f"aivbatch_job_{name}", _HISTOGRAM_HELP[name])
            family.add_metric([], hist.buckets, sum_value=hist.total)
            yield family


def _sql_totals(services: Services) -> tuple[dict[str, int], dict[str, int]]:
    with services.db.read() as session:
        return batches.totals_by_state(session)


async def render(services: Services, registry: CollectorRegistry) -> bytes:
    """The exposition text of every metric."""
    jobs, batches_ = await run_in_threadpool(_sql_totals, services)
    try:
        raw = await services.redis.hgetall(services.keys.metrics)
    except (RedisError, OSError):
        raw = {}
    pooled = jobmetrics.parse({text(k): text(v) for k, v in raw.items()})
    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(_Snapshot(jobs, batches_, pooled))
    return generate_latest(scrape) + generate_latest(registry)
