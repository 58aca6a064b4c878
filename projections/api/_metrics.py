"""Prometheus metrics of one app, under the seed's names, in the app's own registry.

Counters and the latency histogram are fed by an ASGI middleware; the gauges that
describe the read model (sizes, checkpoint count, sync lag) are read from PostgreSQL
when ``/metrics`` is scraped, so they are never staler than the scrape.
"""

from __future__ import annotations

import time
from typing import Any

import asyncpg
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.projections.api._queries import Queries


class ApiMetrics:
    """The seed's ``state_*`` metrics that a read API can observe."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.operations = Counter(
            "state_operations_total",
            "State read operations served, by operation and HTTP status.",
            ["operation", "status"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "state_operation_duration",
            "Seconds from request to first response byte, by operation.",
            ["operation"],
            registry=self.registry,
        )
        self.size = Gauge(
            "state_size_bytes",
            "pg_total_relation_size of each read-model table (with indexes and TOAST).",
            ["table"],
            registry=self.registry,
        )
        self.checkpoints = Gauge(
            "checkpoint_count", "Checkpoints in the read model.", registry=self.registry
        )
        self.sync_lag = Gauge(
            "sync_lag_seconds",
            "Seconds since the newest event the read model has applied was written.",
            registry=self.registry,
        )

    async def render(self, pool: asyncpg.Pool, queries: Queries) -> bytes:
        """Refresh the read-model gauges and return the text exposition."""
        for table, size in (await queries.table_sizes(pool)).items():
            self.size.labels(table=table).set(size)
        self.checkpoints.set(await queries.checkpoint_count(pool))
        lag = await queries.sync_lag_seconds(pool)
        self.sync_lag.set(0.0 if lag is None else max(lag, 0.0))
        return generate_latest(self.registry)


class MetricsMiddleware:
    """Counts every HTTP request by route name and times it to the response start."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        first_byte: float | None = None

        async def timed_send(message: Message) -> None:
            nonlocal status, first_byte
            if message["type"] == "http.response.start":
                status = int(message["status"])
                first_byte = time.perf_counter()
            await send(message)

        try:
            await self.app(scope, receive, timed_send)
        finally:
            operation = _operation(scope)
            ended = first_byte if first_byte is not None else time.perf_counter()
            self.metrics.duration.labels(operation=operation).observe(ended - started)
            self.metrics.operations.labels(operation=operation, status=str(status)).inc()


def _operation(scope: Scope) -> str:
    route: Any = scope.get("route")
    name = getattr(route, "name", None)
    return name if isinstance(name, str) else "unmatched"
