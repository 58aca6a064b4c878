"""The API's part of the process's metrics (``orchestrator.events.metrics``, one registry).

Requests are counted and timed by an ASGI middleware (``component="api"``, the route
name as ``operation``); the gauges that describe the read model (table sizes, the
checkpoint count) are read from PostgreSQL when ``/metrics`` is scraped, so they are
never staler than the scrape.
"""

from __future__ import annotations

import time
from typing import Any

import asyncpg
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.events import record_operation, record_read_model
from orchestrator.events import render as process_metrics_render
from orchestrator.projections.api._queries import Queries


class ApiMetrics:
    """What ``/metrics`` serves: the process's registry, read-model gauges refreshed."""

    async def render(self, pool: asyncpg.Pool, queries: Queries) -> bytes:
        """Refresh the read-model gauges and return the text exposition."""
        sizes = await queries.table_sizes(pool)
        record_read_model(sizes, await queries.checkpoint_count(pool))
        return process_metrics_render()

    def request(self, operation: str, status: int, seconds: float) -> None:
        """One HTTP request: ``ok`` below 400, ``client_error`` for 4xx, else ``error``."""
        outcome = "ok" if status < 400 else "client_error" if status < 500 else "error"
        record_operation("api", operation, seconds, outcome)


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
            self.metrics.request(operation, status, ended - started)


def _operation(scope: Scope) -> str:
    route: Any = scope.get("route")
    name = getattr(route, "name", None)
    return name if isinstance(name, str) else "unmatched"
