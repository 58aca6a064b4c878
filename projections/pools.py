"""Opening and closing a PostgreSQL pool, each within a deadline: the one place.

:func:`open_pool` opens the first connection within ``deadline_s``; a server that
cannot be reached is a :class:`ServerUnreachable` naming it by address (never the
password), whose cause is the driver's error, so the processors' ``is_outage`` still
rides it out. ``asyncpg.Pool.close()`` waits, without limit, for every connection to come back; a
task stuck on one (a cancelled query the server never answered, a connection a failed
caller never released) would hang shutdown for ever. :func:`close_pool` gives it
``deadline_s`` and then terminates the connections that are left.
"""

from __future__ import annotations

import asyncio
import logging
from urllib.parse import parse_qs, urlsplit

import asyncpg

from orchestrator.events import ServerUnreachable

CONNECT_DEADLINE_S = 10.0
CLOSE_DEADLINE_S = 10.0

log = logging.getLogger(__name__)


def dsn_address(dsn: str) -> str:
    """``host:port/database`` of a PostgreSQL DSN, without user or password."""
    try:
        parts = urlsplit(dsn)
        query = parse_qs(parts.query)
        host = parts.hostname or (query.get("host") or ["localhost"])[0]
        port = parts.port or int((query.get("port") or ["5432"])[0])
    except ValueError:
        return "<unparsable DSN>"
    return f"{host}:{port}{parts.path or '/'}"


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "no answer within the deadline"
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


async def open_pool(
    dsn: str,
    *,
    max_size: int = 10,
    min_size: int = 1,
    deadline_s: float = CONNECT_DEADLINE_S,
    command_timeout: float | None = None,
) -> asyncpg.Pool:
    """A pool with its first connection open; ``ServerUnreachable`` within ``deadline_s``."""
    try:
        pool: asyncpg.Pool = await asyncio.wait_for(
            asyncpg.create_pool(
                dsn,
                min_size=min_size,
                max_size=max_size,
                timeout=deadline_s,
                command_timeout=command_timeout,
            ),
            deadline_s,
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
        raise ServerUnreachable("PostgreSQL", dsn_address(dsn), _reason(exc)) from exc
    return pool


async def close_pool(pool: asyncpg.Pool, deadline_s: float = CLOSE_DEADLINE_S) -> None:
    """Close ``pool`` gracefully; terminate what is left after ``deadline_s``."""
    try:
        await asyncio.wait_for(pool.close(), deadline_s)
    except TimeoutError:
        log.warning(
            "PostgreSQL pool: a connection was not released within %.0f s; terminated",
            deadline_s,
        )
        pool.terminate()
