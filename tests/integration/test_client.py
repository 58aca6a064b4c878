"""The typed client against a real server: uvicorn on loopback with a bearer token,
histories written by the processor's own row builders. Sync and async clients, pages
as iterators, read-your-writes by position, SSE as an async iterator, and the
server's problems as typed errors."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest
from _api_support import TOPIC, advance_offsets, notify_changed, serving, write_history

from orchestrator.client import (
    ApiConnectionError,
    AsyncClient,
    Client,
    InvalidRequest,
    NotFound,
    ReadModelBehind,
    Unauthorized,
)
from orchestrator.events import catalogue as c
from orchestrator.events.simulate import HistoryWriter
from orchestrator.projections.api import ApiSettings, create_app

pytestmark = pytest.mark.integration

TOKEN = "client-test-token"
EXECUTIONS = [f"cli-{n}" for n in range(5)]


@pytest.fixture(scope="module")
async def dsn(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        for n, execution_id in enumerate(EXECUTIONS):
            w = HistoryWriter(
                execution_id, "client", random.Random(n), clock=datetime(2024, 1, 1, tzinfo=UTC)
            )
            w.emit(c.ExecutionCreated(pipeline_id="client", tasks=(c.TaskSpec(task_id="t"),)))
            w.emit(c.ExecutionValidationStarted())
            w.emit(c.ExecutionValidationSucceeded())
            await write_history(conn, w.events, partition=2, first_offset=10 * n)
    finally:
        await conn.close()
    return dsn


@pytest.fixture(scope="module")
async def base_url(dsn: str) -> AsyncIterator[str]:
    app = create_app(ApiSettings(database_url=dsn, api_token=TOKEN, stream_heartbeat_seconds=0.2))
    async with serving(app) as url:
        yield url


async def test_reads_come_back_as_the_servers_models(base_url: str) -> None:
    async with AsyncClient(base_url, token=TOKEN) as api:
        execution = await api.execution("cli-0")
        tasks = await api.tasks("cli-0")
        health = await api.health()
        metrics = await api.metrics()

    assert (execution.execution_id, execution.status) == ("cli-0", "running")
    assert [t.task_id for t in tasks.items] == ["t"]
    assert health.status == "ok"
    assert "state_operations_total" in metrics


async def test_listings_iterate_every_page_exactly_once(base_url: str) -> None:
    async with AsyncClient(base_url, token=TOKEN) as api:
        executions = [e.execution_id async for e in api.executions(pipeline_id="client", limit=2)]
        events = [e.sequence async for e in api.events("cli-1", limit=1)]
        checkpoints = [c async for c in api.checkpoints("cli-1", limit=1)]

    assert sorted(executions) == EXECUTIONS
    assert events == [1, 2, 3]
    assert checkpoints == []  # the histories save none


async def test_the_sync_client_reads_the_same(base_url: str) -> None:
    def read() -> tuple[str, list[int]]:
        with Client(base_url, token=TOKEN) as api:
            return api.execution("cli-2").status, [e.sequence for e in api.events("cli-2")]

    status, sequences = await asyncio.to_thread(read)

    assert (status, sequences) == ("running", [1, 2, 3])


async def test_a_missing_token_is_unauthorized_and_errors_carry_the_problem(base_url: str) -> None:
    async with AsyncClient(base_url) as anonymous:
        assert (await anonymous.health()).status == "ok"
        with pytest.raises(Unauthorized) as refused:
            await anonymous.execution("cli-0")
    async with AsyncClient(base_url, token=TOKEN) as api:
        with pytest.raises(NotFound) as missing:
            await api.execution("nope")
        with pytest.raises(InvalidRequest) as invalid:
            await api.events_page("cli-0", limit=0)
        with pytest.raises(ReadModelBehind) as behind:
            await api.execution("cli-0", position=f"{TOPIC}:7:1", wait_ms=50)

    assert refused.value.status == 401
    assert missing.value.detail == "execution 'nope' not found"
    assert missing.value.problem["execution_id"] == "nope"
    assert missing.value.type == "urn:orchestrator-state:problem:execution-not-found"
    assert invalid.value.problem["errors"][0]["loc"] == ["query", "limit"]
    assert behind.value.retriable


async def test_a_position_waits_for_the_read_model(base_url: str, dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        async with AsyncClient(base_url, token=TOKEN) as api:
            read = asyncio.create_task(
                api.execution("cli-3", position=f"{TOPIC}:6:4", wait_ms=10_000)
            )
            await asyncio.sleep(0.2)
            assert not read.done()
            await advance_offsets(conn, "read_models", partition=6, next_offset=5)
            execution = await asyncio.wait_for(read, timeout=10)
    finally:
        await conn.close()

    assert execution.execution_id == "cli-3"


async def test_a_stream_is_an_async_iterator_of_states(base_url: str, dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        async with AsyncClient(base_url, token=TOKEN, timeout=10) as api:
            states = api.stream("cli-4")
            async with asyncio.timeout(10):
                first = await anext(states)
                await conn.execute(
                    "UPDATE pipeline_states SET status = 'paused', last_sequence = 4"
                    " WHERE execution_id = 'cli-4'"
                )
                await notify_changed(conn, "cli-4")
                second = await anext(states)
            await states.aclose()
    finally:
        await conn.close()

    assert (first.status, second.status, second.last_sequence) == ("running", "paused", 4)


async def test_an_unreachable_api_is_a_connection_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with AsyncClient(f"http://127.0.0.1:{port}", timeout=2) as api:
        with pytest.raises(ApiConnectionError) as failed:
            await api.health()

    assert f"127.0.0.1:{port}" in str(failed.value)
