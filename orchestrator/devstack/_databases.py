"""A fresh database on a PostgreSQL server, so a run (a test, a benchmark) sees only
its own rows; dropped with its sessions on exit."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg


@asynccontextmanager
async def fresh_database(
    server_dsn: str, prefix: str, *, migrated: bool = True
) -> AsyncIterator[str]:
    """The DSN of a new database ``<prefix>_<random>`` (with the read-model tables
    unless not ``migrated``)."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        dsn = urlunsplit(urlsplit(server_dsn)._replace(path=f"/{name}"))
        if migrated:
            from orchestrator.projections import migrate  # only where tables are wanted

            conn = await asyncpg.connect(dsn)
            try:
                await migrate(conn)
            finally:
                await conn.close()
        yield dsn
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()
