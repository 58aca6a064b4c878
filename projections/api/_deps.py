"""Per-request dependencies: the app's resources, bearer auth, the read-your-writes barrier.

The auth and barrier dependencies are built per app from its settings, so the OpenAPI
document says exactly what this app enforces (the ``wait_ms`` maximum, the bearer
scheme only when a token is configured).

No ``from __future__ import annotations`` here: the dependencies are closures whose
annotations name local values (``settings.max_wait_ms``, the ``bearer`` scheme), and
FastAPI can resolve those only if they are evaluated when the function is defined.
"""

import hmac
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated

import asyncpg
from fastapi import Depends, Header, HTTPException, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import SecretStr

from orchestrator.events import Position, parse_session, session_token
from orchestrator.projections.api._listener import StateChangeListener
from orchestrator.projections.api._metrics import ApiMetrics
from orchestrator.projections.api._params import invalid, parse_position
from orchestrator.projections.api._queries import Queries
from orchestrator.projections.api.errors import ReadModelBehind
from orchestrator.projections.api.settings import ApiSettings
from orchestrator.projections.positions import applied_offset, until_applied
from orchestrator.projections.redisstore import RedisReadModelStore

Dependency = Callable[..., Awaitable[None]]
SESSION_HEADER = "Orchestrator-Session"
"""A causal session token (``orchestrator.state.sync``): in, positions the read waits
for; out, those and what the response reflects (send it empty to start a session)."""


@dataclass(frozen=True, slots=True)
class ApiContext:
    """What the lifespan opened; one per app, on ``app.state.api``."""

    settings: ApiSettings
    pool: asyncpg.Pool
    queries: Queries
    listener: StateChangeListener
    metrics: ApiMetrics
    redis: RedisReadModelStore | None = None
    """The Redis read model (``backend: "redis"``): execution reads without a
    ``position`` are served from it (borrowed from the app; not closed here)."""


def api_context(request: Request) -> ApiContext:
    """The running app's resources."""
    ctx: ApiContext = request.app.state.api
    return ctx


Context = Annotated[ApiContext, Depends(api_context)]


def make_auth(token: SecretStr) -> Dependency:
    """A dependency requiring ``Authorization: Bearer <token>``, compared in constant time."""
    expected = token.get_secret_value().encode()
    bearer = HTTPBearer(auto_error=False, description="The API token (ORCHESTRATOR_API_TOKEN).")

    async def require_token(
        credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
    ) -> None:
        given = b"" if credentials is None else credentials.credentials.encode()
        if not hmac.compare_digest(given, expected) or credentials is None:
            raise HTTPException(
                status_code=401,
                detail="missing or invalid bearer token",
                headers={"WWW-Authenticate": "Bearer"},
            )

    return require_token


async def wait_for_position(ctx: ApiContext, position: Position, seconds: float) -> bool:
    """Whether the read model applies ``position`` within ``seconds``.

    The same check as ``projections.positions.wait_for_position`` (``next_offset >
    offset``, via its ``applied_offset``), but that one holds a pooled connection
    LISTENing for the whole wait; here the app's one LISTEN connection wakes the
    waiter and each check borrows a connection only for its query, so a hundred
    waiting reads cannot starve the pool. A short backing-off poll covers a lost
    notification.
    """
    projection, pool = ctx.settings.projection, ctx.pool
    deadline = time.monotonic() + seconds
    interval = 0.01

    async def applied() -> int:
        async with pool.acquire() as conn:
            return await applied_offset(conn, projection, position.topic, position.partition)

    with ctx.listener.subscribe(ctx.settings.offsets_channel, projection) as changes:

        async def notified(remaining: float) -> None:
            nonlocal interval
            await changes.wait(min(interval, remaining))
            interval = min(interval * 2, 0.25)

        return await until_applied(position, applied, notified, deadline)


def make_read_barrier(settings: ApiSettings) -> Dependency:
    """The ``position`` / ``wait_ms`` parameters every read accepts (read-your-writes)."""

    async def read_barrier(
        ctx: Context,
        response: Response,
        session: Annotated[
            str | None,
            Header(
                alias=SESSION_HEADER,
                description="Causal session token (`topic:partition:offset`, comma-"
                "separated): the read waits until every position is applied; the response "
                "carries the token extended by what it reflects.",
            ),
        ] = None,
        position: Annotated[
            str | None,
            Query(
                description="Wait until the read model has applied this log position "
                "(`topic:partition:offset`, as returned by an append).",
                examples=["orchestrator.pipeline.events:0:42"],
            ),
        ] = None,
        wait_ms: Annotated[
            int | None,
            Query(
                ge=0,
                le=settings.max_wait_ms,
                description="How long to wait for `position` "
                f"(default {settings.wait_default_ms}); 504 when it is not reached.",
            ),
        ] = None,
    ) -> None:
        targets = [] if position is None else [parse_position(position)]
        try:
            seen = parse_session(session)
        except ValueError as exc:
            error = invalid(SESSION_HEADER, str(exc), session)
            error.errors()[0]["loc"] = ("header", SESSION_HEADER)
            raise error from None
        budget = settings.wait_default_ms if wait_ms is None else wait_ms
        for target in [*targets, *seen]:
            if not await wait_for_position(ctx, target, budget / 1000):
                raise ReadModelBehind(target.token(), budget)
        if session is not None:  # read before the route's query: it reflects at least this
            applied = await ctx.pool.fetch(
                "SELECT topic, partition, next_offset FROM projection_offsets"
                " WHERE projection = $1 AND next_offset > 0",
                ctx.settings.projection,
            )
            reflected = [
                Position(r["topic"], r["partition"], r["next_offset"] - 1) for r in applied
            ]
            response.headers[SESSION_HEADER] = session_token([*seen, *targets, *reflected])

    return read_barrier
