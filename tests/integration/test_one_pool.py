"""One connection pool per process: the embedded query API reads through the App's.

A user running ``orchestrator-state dev`` (or an App with ``api_port``) gets one pool
sized by ``pool_size``; the API must not open a second one with its own decoding, and
must still answer JSON objects for the read model's ``jsonb`` columns.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg
import httpx
import pytest

from orchestrator.commands import CreateExecution
from orchestrator.projections import close_pool
from tests.integration._worker import supervising_app


async def test_the_embedded_api_answers_through_the_apps_pool(
    services: Any, make_database: Any, tmp_path: Any
) -> None:
    dsn = await make_database(migrated=False)
    async with supervising_app(
        services,
        dsn,
        tmp_path,
        name="one-pool",
        node_id="node-a",
        crash_timeout=30,
        failover_timeout=30,
        api_port=0,
        join_recovery=False,
        supervise=False,
    ) as app:
        assert app.runtime is not None and app.api_url is not None
        execution_id = f"exec_{uuid.uuid4().hex[:10]}"
        await app.runtime.create_execution(
            CreateExecution(
                execution_id=execution_id,
                pipeline_id="one_pool",
                tasks=("fetch",),
                input_data={"source": "s3://bucket/key"},
            )
        )
        await app.runtime.wait_for(app.runtime.written())
        async with httpx.AsyncClient(base_url=app.api_url) as http:
            got = (await http.get(f"/executions/{execution_id}")).json()
        served = app._server.config.app  # type: ignore[union-attr]
        assert served.state.api.pool is app.pool  # borrowed, not a second pool
    assert got["execution_id"] == execution_id
    assert isinstance(got["context"], dict)  # jsonb decoded without a type codec


async def test_closing_a_pool_with_a_connection_never_released_ends_within_its_deadline(
    postgres: str,
) -> None:
    """A caller that never gives its connection back must not hang shutdown for ever:
    the pool closes within its deadline and the stuck connection is cut."""
    pool = await asyncpg.create_pool(postgres, min_size=1, max_size=2)
    stuck = await pool.acquire()  # never released
    await asyncio.wait_for(close_pool(pool, deadline_s=0.5), 30)
    with pytest.raises(asyncpg.InterfaceError):  # the stuck connection was cut
        await stuck.fetchval("SELECT 1")
    with pytest.raises(asyncpg.InterfaceError):  # and the pool is closed
        await pool.acquire()
