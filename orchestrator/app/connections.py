"""Opening the process's connections with a deadline, and the database's schema.

A server that cannot be reached is a :class:`ServerUnreachable` naming the server and
its address (never the password), raised within the deadline: a wrong port or a
stopped database fails in seconds, it does not hang. :func:`apply_migrations` is what
``orchestrator-state migrate``, the app and ``orchestrator.connect`` run: the
read-model migrations, then the runtime's own tables.
"""

from __future__ import annotations

import asyncpg

from orchestrator.events import ServerUnreachable
from orchestrator.projections import (
    CONNECT_DEADLINE_S,
    TableNames,
    dsn_address,
    migrate,
    open_pool,
)
from orchestrator.runtime import ensure_runtime_tables

__all__ = [
    "CONNECT_DEADLINE_S",
    "ServerUnreachable",
    "apply_migrations",
    "dsn_address",
    "open_pool",
]


async def apply_migrations(pool: asyncpg.Pool, tables: TableNames | None = None) -> list[str]:
    """Apply the pending read-model migrations and create the runtime's tables."""
    async with pool.acquire() as conn:
        applied = await migrate(conn, tables)
    await ensure_runtime_tables(pool)
    return applied
