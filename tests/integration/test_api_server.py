"""The query API served for real: uvicorn on a loopback port, SSE over HTTP, the CLI.

The in-process ASGI transport buffers whole responses, so server-sent events are
tested against a real server.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import shutil
import socket
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import pytest
from _api_support import execution_stream, notify_changed, serving, sse_events, write_history
from fastapi import FastAPI

from orchestrator.events import catalogue as c
from orchestrator.events.simulate import HistoryWriter
from orchestrator.projections.api import ApiSettings, create_app

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
async def dsn(dsn: str) -> str:
    """The module's database, holding two running executions to stream."""
    conn = await asyncpg.connect(dsn)
    try:
        for execution_id in ("stream-1", "stream-2"):
            w = HistoryWriter(
                execution_id, "p", random.Random(0), clock=datetime(2024, 1, 1, tzinfo=UTC)
            )
            w.emit(c.ExecutionCreated(pipeline_id="p", tasks=(c.TaskSpec(task_id="t"),)))
            w.emit(c.ExecutionValidationStarted())
            w.emit(c.ExecutionValidationSucceeded())
            await write_history(conn, w.events)
    finally:
        await conn.close()
    return dsn


@pytest.fixture(scope="module")
async def app(dsn: str) -> FastAPI:
    return create_app(ApiSettings(database_url=dsn, stream_heartbeat_seconds=0.2))


@pytest.fixture(scope="module")
async def base_url(app: FastAPI) -> AsyncIterator[str]:
    async with serving(app) as url:
        yield url


async def test_the_api_serves_over_http(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        health = await client.get("/health")
        execution = await client.get("/executions/stream-1")

    assert health.json()["status"] == "ok"
    assert execution.json()["status"] == "running"


async def test_a_stream_sends_the_state_then_each_notified_change(base_url: str, dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        async with execution_stream(base_url, "stream-1") as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            events = sse_events(response)
            async with asyncio.timeout(10):
                first = await anext(events)
                assert first["event"] == "state"
                assert json.loads(first["data"])["status"] == "running"
                assert first["id"] == "3"

                # Another execution changes: nothing to send on this stream. Then ours.
                await conn.execute(
                    "UPDATE pipeline_states SET status = 'paused', last_sequence = 4"
                    " WHERE execution_id = 'stream-2'"
                )
                await notify_changed(conn, "stream-2")
                await conn.execute(
                    "UPDATE pipeline_states SET status = 'paused', last_sequence = 4"
                    " WHERE execution_id = 'stream-1'"
                )
                await notify_changed(conn, "stream-1", "stream-2")
                second = await anext(events)

            state = json.loads(second["data"])
            assert (state["execution_id"], state["status"], second["id"]) == (
                "stream-1",
                "paused",
                "4",
            )
    finally:
        await conn.close()


async def test_a_stream_of_an_unknown_execution_is_404(base_url: str) -> None:
    async with httpx.AsyncClient(base_url=base_url) as client:
        response = await client.get("/executions/nope/stream")

    assert response.status_code == 404
    assert response.json()["execution_id"] == "nope"


def _console_script() -> str:
    beside_python = Path(sys.executable).with_name("orchestrator-state")
    found = str(beside_python) if beside_python.exists() else shutil.which("orchestrator-state")
    assert found, "orchestrator-state is not installed (pip install -e .)"
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_the_cli_serves_on_loopback_with_the_token_from_the_environment(dsn: str) -> None:
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": dsn, "ORCHESTRATOR_API_TOKEN": "cli-token"}
    process = await asyncio.create_subprocess_exec(
        _console_script(), "api", "--port", str(port),
        env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            async with asyncio.timeout(30):
                while True:
                    try:
                        health = await client.get("/health")
                        break
                    except httpx.TransportError:
                        assert process.returncode is None, "the CLI exited early"
                        await asyncio.sleep(0.1)
            unauthorised = await client.get("/executions")
            authorised = await client.get(
                "/executions", headers={"Authorization": "Bearer cli-token"}
            )
    finally:
        process.terminate()
        stdout, _ = await asyncio.wait_for(process.communicate(), timeout=20)
    output = stdout.decode()

    assert health.status_code == 200
    assert unauthorised.status_code == 401
    assert [e["execution_id"] for e in authorised.json()["items"]] == ["stream-2", "stream-1"]
    assert f"http://127.0.0.1:{port}" in output
    # A graceful stop on SIGTERM ends with exit 0 (what a container reports as clean).
    assert process.returncode == 0, output
    assert "Traceback" not in output and "cli-token" not in output


async def test_a_stream_survives_the_loss_of_the_listen_connection(base_url: str, dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        async with (
            httpx.AsyncClient(base_url=base_url, timeout=10) as client,
            client.stream("GET", "/executions/stream-2/stream") as response,
        ):
            events = sse_events(response)
            async with asyncio.timeout(20):
                await anext(events)
                killed = await conn.fetchval(
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                    " WHERE datname = current_database() AND query LIKE 'LISTEN%'"
                )
                assert killed == 1
                # Changed while the API was not listening: the NOTIFY is lost, but the
                # reconnect makes every stream re-read.
                await conn.execute(
                    "UPDATE pipeline_states SET status = 'cancelled', last_sequence = 9"
                    " WHERE execution_id = 'stream-2'"
                )
                await notify_changed(conn, "stream-2")
                state = json.loads((await anext(events))["data"])
                assert state["status"] == "cancelled"
                health = (await client.get("/health")).json()
                assert health["notifications"] == "ok"  # reconnected: it woke the stream
    finally:
        await conn.close()
