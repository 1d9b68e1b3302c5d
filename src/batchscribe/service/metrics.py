"""The service's Prometheus metrics: HTTP requests, events taken, and the job store's gauges.

Each app has its own registry (so two apps in one process do not clash); GET /metrics returns
it in Prometheus' text format, behind the token like every other path.
"""

from __future__ import annotations

import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    ProcessCollector,
    generate_latest,
)

from batchscribe.jobs.metrics import StoreCollector
from batchscribe.jobs.store import JobStore


class ServiceMetrics:
    def __init__(self, store: JobStore):
        self.registry = CollectorRegistry()
        self.registry.register(StoreCollector(store))
        ProcessCollector(registry=self.registry)  # the service's own CPU, memory, open files
        self.requests = Counter(
            "batchscribe_http_requests_total", "HTTP requests answered, by route and status code",
            ["method", "route", "code"], registry=self.registry,
        )  # fmt: skip
        self.latency = Histogram(
            "batchscribe_http_request_duration_seconds", "Time to answer an HTTP request, by route",
            ["route"], buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10), registry=self.registry,
        )  # fmt: skip
        self.events = Counter(
            "batchscribe_events_received_total", "Object-created events announced in posted notifications",
            registry=self.registry,
        )  # fmt: skip
        self.queued = Counter(
            "batchscribe_jobs_queued_total", "Jobs this service added to the store (events and submissions)",
            registry=self.registry,
        )  # fmt: skip
        self.dead_lettered = Counter(
            "batchscribe_dead_lettered_total", "Posted bodies that were not events (400, kept as dead letters)",
            registry=self.registry,
        )  # fmt: skip

    def exposition(self) -> tuple[bytes, str]:
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class RequestMetrics:
    """ASGI middleware: counts and times every request by its route's path template (bounded labels)."""

    def __init__(self, app, metrics: ServiceMetrics):
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        code = 500

        async def tracked_send(message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, tracked_send)
        finally:
            route = getattr(scope.get("route"), "path", None) or "unmatched"
            self.metrics.requests.labels(scope["method"], route, str(code)).inc()
            self.metrics.latency.labels(route).observe(time.perf_counter() - started)
