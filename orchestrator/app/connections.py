"""Opening the process's connections with a deadline, and the database's schema.

A server that cannot be reached is a :class:`ServerUnreachable` naming the server and
its address (never the password), raised within the deadline: a wrong port or a
stopped database fails in seconds, it does not hang. :func:`apply_migrations` is what
``orchestrator-state migrate``, the app and ``orchestrator.connect`` run: the
read-model migrations, then the runtime's own tables.
"""

from __future__ import annotations

import asyncio
from urllib.parse import parse_qs, urlsplit

import asyncpg

from orchestrator.events import ServerUnreachable
from orchestrator.projections import TableNames, migrate
from orchestrator.runtime import ensure_runtime_tables

CONNECT_DEADLINE_S = 10.0

__all__ = [
    "CONNECT_DEADLINE_S",
    "ServerUnreachable",
    "apply_migrations",
    "dsn_address",
    "open_pool",
]


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
    dsn: str, *, max_size: int = 10, deadline_s: float = CONNECT_DEADLINE_S
) -> asyncpg.Pool:
    """The process's asyncpg pool; ``ServerUnreachable`` if PostgreSQL does not answer."""
    try:
        pool: asyncpg.Pool = await asyncio.wait_for(
            asyncpg.create_pool(dsn, min_size=1, max_size=max_size, timeout=deadline_s),
            deadline_s,
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, ValueError) as exc:
        raise ServerUnreachable("PostgreSQL", dsn_address(dsn), _reason(exc)) from exc
    return pool


async def apply_migrations(pool: asyncpg.Pool, tables: TableNames | None = None) -> list[str]:
    """Apply the pending read-model migrations and create the runtime's tables."""
    async with pool.acquire() as conn:
        applied = await migrate(conn, tables)
    await ensure_runtime_tables(pool)
    return applied
