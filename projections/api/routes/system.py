"""``/health`` (no auth: for load balancers) and ``/metrics`` (Prometheus)."""

from __future__ import annotations

import asyncio
import logging
from typing import Literal

import asyncpg
from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from orchestrator.projections.api._deps import Context
from orchestrator.projections.api.models import HealthOut

log = logging.getLogger(__name__)

health_router = APIRouter(tags=["operations"])
metrics_router = APIRouter(tags=["operations"])

_HEALTH_TIMEOUT_SECONDS = 2.0


@health_router.get(
    "/health",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "PostgreSQL does not answer."}},
)
async def health(ctx: Context) -> HealthOut | JSONResponse:
    """Whether the read model's database answers (and the LISTEN connection is up)."""
    notifications: Literal["ok", "reconnecting"] = (
        "ok" if ctx.listener.connected else "reconnecting"
    )
    try:
        async with asyncio.timeout(_HEALTH_TIMEOUT_SECONDS):
            await ctx.pool.fetchval("SELECT 1")
    except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        log.warning("health check: database unavailable: %r", exc)
        body = HealthOut(
            status="unavailable", database=f"unavailable: {exc!r}", notifications=notifications
        )
        return JSONResponse(status_code=503, content=body.model_dump())
    return HealthOut(status="ok", database="ok", notifications=notifications)


@metrics_router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"description": "Prometheus text format.", "content": {"text/plain": {}}}},
)
async def metrics(ctx: Context) -> Response:
    """The seed's state metrics in Prometheus' text format."""
    body = await ctx.metrics.render(ctx.pool, ctx.queries)
    return Response(content=body, media_type=CONTENT_TYPE_LATEST)
