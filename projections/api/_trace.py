"""Tracing in the query API (on only when an OTel SDK is configured; see events.tracing).

Recent FastAPI versions trace every request themselves when ``opentelemetry-api`` is
installed (a server span continuing the request's ``traceparent``, on the global
provider); with an older FastAPI, :class:`TraceMiddleware` does the same.
``GET /executions/{id}`` answers with a ``traceparent`` response header: the trace
context of the last traced write the read model applied to that execution, so a
reader can find the trace that produced what it sees.
"""

from __future__ import annotations

import inspect
from typing import Any

import asyncpg
from fastapi import FastAPI
from opentelemetry import trace
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orchestrator.events import context_of, enabled, tracer

NATIVE_TELEMETRY = "telemetry" in inspect.signature(FastAPI.__init__).parameters
"""Whether this FastAPI opens request spans itself (``FastAPI(telemetry=...)``)."""

_LAST_TRACE = "SELECT traceparent FROM execution_traces WHERE execution_id = $1"


async def last_traceparent(pool: asyncpg.Pool, execution_id: str) -> str | None:
    """The traceparent of the last traced write applied to the execution (tracing on)."""
    if not enabled():
        return None
    trace.get_current_span().set_attribute("execution_id", execution_id)
    try:
        found: str | None = await pool.fetchval(_LAST_TRACE, execution_id)
    except asyncpg.UndefinedTableError:  # a database not migrated to 0005 yet
        return None
    return found


class TraceMiddleware:
    """A ``SERVER`` span per HTTP request, child of the request's ``traceparent``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not enabled():
            await self.app(scope, receive, send)
            return
        found = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        parent = context_of(found.get("traceparent"), found.get("tracestate"))
        method = scope.get("method", "GET")
        with tracer().start_as_current_span(
            f"{method} {scope.get('path', '')}",
            context=parent,
            kind=trace.SpanKind.SERVER,
            attributes={"http.request.method": method, "url.path": scope.get("path", "")},
        ) as span:

            async def traced_send(message: Message) -> None:
                if message["type"] == "http.response.start":
                    _describe(span, scope, int(message["status"]))
                await send(message)

            await self.app(scope, receive, traced_send)


def _describe(span: trace.Span, scope: Scope, status: int) -> None:
    route: Any = scope.get("route")
    path = getattr(route, "path", None)
    if isinstance(path, str):
        span.update_name(f"{scope.get('method', 'GET')} {path}")
        span.set_attribute("http.route", path)
    execution_id = (scope.get("path_params") or {}).get("execution_id")
    if execution_id is not None:
        span.set_attribute("execution_id", str(execution_id))
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(trace.StatusCode.ERROR)
