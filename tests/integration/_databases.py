"""Fresh PostgreSQL databases on the session's server, one per test or module.

Kept apart from the other helpers (light imports) because conftest.py builds its
database fixtures on it and `_state_stack` opens one outside any fixture.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from orchestrator.projections.migrate import migrate

MakeDatabase = Callable[..., Awaitable[str]]
"""The `make_database` fixture: `await make_database(migrated=True)` -> a new DSN."""


def database_prefix(name: str) -> str:
    """A database-name prefix from a test or module name (PostgreSQL names stop at 63)."""
    return re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_")[:40] or "test"


@asynccontextmanager
async def fresh_database(
    server_dsn: str, prefix: str, *, migrated: bool = True
) -> AsyncIterator[str]:
    """A new database (with the read-model tables unless not ``migrated``); dropped after."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        dsn = urlunsplit(urlsplit(server_dsn)._replace(path=f"/{name}"))
        if migrated:
            conn = await asyncpg.connect(dsn)
            try:
                await migrate(conn)
            finally:
                await conn.close()
        yield dsn
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
