"""A fresh database per bench run, so runs never see each other's rows."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from orchestrator.projections.migrate import migrate


@asynccontextmanager
async def fresh_database(
    server_dsn: str | None, prefix: str = "run", *, migrated: bool = False
) -> AsyncIterator[str]:
    """The DSN of a new database on the server, dropped (with its sessions) on exit.

    ``server_dsn`` ``None`` starts an embedded PostgreSQL for the run; ``migrated``
    applies the read models' migrations first.
    """
    if server_dsn is None:
        from orchestrator.devstack import local_services

        async with local_services(kafka=False, s3=False) as endpoints:
            assert endpoints.database_url is not None
            async with fresh_database(endpoints.database_url, prefix, migrated=migrated) as dsn:
                yield dsn
        return
    name = f"bench_{prefix}_{uuid.uuid4().hex[:8]}"
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
