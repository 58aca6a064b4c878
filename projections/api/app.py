"""``create_app(settings)``: the FastAPI app over the read models, built per call.

The lifespan opens what the app needs (an asyncpg pool, one LISTEN connection) and
closes it; nothing connects at import time. Routers are plain module-level objects;
auth and the read-your-writes barrier are attached here, per app, from the settings.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import asyncpg
from fastapi import Depends, FastAPI
from fastapi.params import Depends as DependsParam
from fastapi.responses import JSONResponse

from orchestrator.events import KeyRing
from orchestrator.projections.api import _problems, routes_timeline
from orchestrator.projections.api._deps import ApiContext, make_auth, make_read_barrier
from orchestrator.projections.api._listener import StateChangeListener
from orchestrator.projections.api._metrics import ApiMetrics, MetricsMiddleware
from orchestrator.projections.api._queries import Queries
from orchestrator.projections.api._sealed import SealedDataMiddleware
from orchestrator.projections.api._trace import NATIVE_TELEMETRY, TraceMiddleware
from orchestrator.projections.api.models import ErrorOut
from orchestrator.projections.api.routes import executions, history, stream, system, variables
from orchestrator.projections.api.settings import ApiSettings
from orchestrator.projections.datakeys import PostgresDataKeys
from orchestrator.projections.migrator import TableNames, migrate
from orchestrator.projections.pools import close_pool, open_pool
from orchestrator.projections.redisstore import RedisReadModelStore

log = logging.getLogger(__name__)


def _lifespan(
    settings: ApiSettings,
    metrics: ApiMetrics,
    redis: RedisReadModelStore | None,
    borrowed: asyncpg.Pool | None,
) -> Any:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        dsn = settings.database_url.get_secret_value()
        pool = borrowed or await open_pool(
            dsn,
            min_size=settings.pool_min_size,
            max_size=settings.pool_max_size,
            command_timeout=settings.query_timeout_seconds,
        )
        try:
            if settings.apply_migrations:
                t = settings.tables
                async with pool.acquire() as conn:
                    await migrate(conn, TableNames(t.pipeline_states, t.task_states, t.checkpoints))
            channels = (settings.state_channel, settings.offsets_channel)
            async with StateChangeListener(dsn, channels) as listener:
                # Opens sealed user data (keys from ORCHESTRATOR_SNAPSHOT_KEYS, if set) and
                # answers 410 for erased executions: see _sealed.
                app.state.data_keys = PostgresDataKeys(pool, KeyRing.from_env())
                app.state.api = ApiContext(
                    settings=settings,
                    pool=pool,
                    queries=Queries(settings.tables),
                    listener=listener,
                    metrics=metrics,
                    redis=redis,
                )
                yield
        finally:
            if borrowed is None:
                await close_pool(pool)

    return lifespan


_ERRORS: dict[int | str, dict[str, Any]] = {
    503: {"model": ErrorOut, "description": "The read model's database is unavailable."},
}
_READ_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    504: {"model": ErrorOut, "description": "`position` not applied within `wait_ms`."},
}


def create_app(
    settings: ApiSettings,
    *,
    redis: RedisReadModelStore | None = None,
    pool: asyncpg.Pool | None = None,
) -> FastAPI:
    """A new query API app; serve it with uvicorn (``orchestrator-state api``). With
    ``redis`` (the app's Redis read model), execution reads come from Redis. With
    ``pool`` (the embedding process's one pool, borrowed: never closed here) it opens
    none of its own; otherwise its lifespan opens one from ``settings``."""
    metrics = ApiMetrics()
    guarded = settings.api_token is not None
    app = FastAPI(
        title="orchestrator-state query API",
        version="1",
        summary="Read models of pipeline executions, tasks, checkpoints and shared state.",
        lifespan=_lifespan(settings, metrics, redis, pool),
        # With a token, the schema is served below behind it, and the browser docs
        # (which cannot send a bearer token) are off.
        openapi_url=None if guarded else "/openapi.json",
        docs_url=None if guarded else "/docs",
        redoc_url=None,
    )
    app.add_middleware(SealedDataMiddleware)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    if not NATIVE_TELEMETRY:  # FastAPI traces requests itself from 0.16x on
        app.add_middleware(TraceMiddleware)
    _problems.install(app)

    guard: list[DependsParam] = []
    errors = dict(_ERRORS)
    if settings.api_token is not None:
        guard.append(Depends(make_auth(settings.api_token)))
        errors[401] = {"model": ErrorOut, "description": "Missing or wrong bearer token."}
    barrier = Depends(make_read_barrier(settings))
    read_errors = {**_READ_ERRORS, **errors}
    for router in (executions.router, history.router, variables.router, stream.router):
        app.include_router(router, dependencies=[*guard, barrier], responses=read_errors)
    routes_timeline.include(app, dependencies=[*guard, barrier], responses=read_errors)
    app.include_router(system.metrics_router, dependencies=guard, responses=errors)
    app.include_router(system.health_router, responses=_ERRORS)
    if guarded:

        @app.get("/openapi.json", include_in_schema=False, dependencies=guard)
        async def openapi() -> JSONResponse:
            return JSONResponse(app.openapi())

    return app
