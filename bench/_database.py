"""A fresh database per bench run, so runs never see each other's rows."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from orchestrator.devstack import fresh_database as _fresh
from orchestrator.devstack import local_services


@asynccontextmanager
async def fresh_database(
    server_dsn: str | None, prefix: str = "run", *, migrated: bool = False
) -> AsyncIterator[str]:
    """A new database ``bench_<prefix>_...`` on the server (an embedded PostgreSQL is
    started for the run when ``server_dsn`` is None); ``migrated``: with the read models."""
    if server_dsn is None:
        async with local_services(kafka=False, s3=False) as endpoints:
            assert endpoints.database_url is not None
            async with _fresh(endpoints.database_url, f"bench_{prefix}", migrated=migrated) as dsn:
                yield dsn
        return
    async with _fresh(server_dsn, f"bench_{prefix}", migrated=migrated) as dsn:
        yield dsn
