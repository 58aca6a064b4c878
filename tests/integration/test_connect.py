"""``orchestrator.connect()`` against fresh servers: an empty database (no tables) and
no topics. It applies the migrations, creates the topics, and wires the seed's API on
one pool: a pipeline runs, a checkpoint is saved, listed and restored, a
DistributedLock is taken. A server that cannot be reached is one clear error naming
it and its address, raised within the deadline (no hang)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from _connect_support import write_config

import orchestrator
from orchestrator import Pipeline
from orchestrator.app.topics import topics_from
from orchestrator.commands.errors import LockTimeout
from orchestrator.config import load_config_file
from orchestrator.events.topics import describe_topics
from orchestrator.projections import ProjectionSettings, run_processor
from orchestrator.state import DistributedLock, NotConfigured, checkpoint


async def test_connect_on_fresh_servers_runs_checkpoints_and_locks(
    kafka: Any, connect_env: dict[str, str], tmp_path: Path, topic: str
) -> None:
    env, dsn = connect_env, connect_env["DATABASE_URL"]
    pipeline = Pipeline(f"connect-{uuid.uuid4().hex[:8]}")

    @pipeline.task()
    async def fetch(context: Any) -> dict[str, int]:
        await checkpoint.save("fetched", {"progress": 0.5, "pages": 3})
        return {"pages": 3}

    @pipeline.task(depends_on=["fetch"])
    async def count(fetch: dict[str, int]) -> int:
        return fetch["pages"] * 2

    async with orchestrator.connect(config=write_config(tmp_path, topic), environ=env) as state:
        result = await state.run(pipeline, {"user_id": "u1"})
        assert (result.status, result.result) == ("completed", 6)
        saved = await checkpoint.list(execution_id=result.execution_id)
        mine = [c for c in saved if c.name == "fetched"]  # beside the automatic ones
        assert len(mine) == 1
        restored = await checkpoint.restore(checkpoint_id=mine[0].id)
        assert restored.data == {"progress": 0.5, "pages": 3}
        assert restored.state.tasks["fetch"].status == "running"
        async with DistributedLock(f"{topic}-resource", ttl=5) as lock:  # the seed's form
            assert lock.held
            other = state.lock(f"{topic}-resource", ttl=5, timeout=0.2)
            with pytest.raises(LockTimeout):
                await other.acquire()
        assert state.pool is state.runtime.pool
    with pytest.raises(NotConfigured, match=r"orchestrator\.connect"):
        await checkpoint.list(execution_id=result.execution_id)
    layout = topics_from(load_config_file(write_config(tmp_path, topic)).settings)
    report = await describe_topics(kafka.bootstrap_servers, layout.specs())
    assert len(report.topics) == 4 and all(t.exists for t in report.topics)
    assert report.problems == ()
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM pipeline_states") == 1
    finally:
        await conn.close()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
async def silent_port() -> AsyncIterator[int]:
    """A port that accepts connections and never answers (a hung server)."""
    held: list[asyncio.StreamWriter] = []

    async def accept(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(accept, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in held:
            writer.close()


async def _refused(env: dict[str, str], tmp_path: Path, deadline: float = 2.0) -> Any:
    config = write_config(tmp_path, f"refused-{uuid.uuid4().hex[:8]}")
    async with asyncio.timeout(deadline * 4):  # a hang fails here, not after minutes
        with pytest.raises(orchestrator.ServerUnreachable) as caught:
            async with orchestrator.connect(config=config, environ=env, connect_timeout=deadline):
                pass
    return caught.value


async def test_nothing_connected_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(NotConfigured, match=r"orchestrator\.connect"):
        await checkpoint.list(execution_id="exec_x")
    with pytest.raises(orchestrator.NotConnected, match="DATABASE_URL"):
        async with orchestrator.connect(environ={}):
            pass


async def test_postgresql_refused_names_server_and_address(kafka: Any, tmp_path: Path) -> None:
    port = _free_port()
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "DATABASE_URL": f"postgresql://app:secret@127.0.0.1:{port}/orders",
    }
    error = await _refused(env, tmp_path)
    assert (error.server, error.address) == ("PostgreSQL", f"127.0.0.1:{port}/orders")
    assert f"PostgreSQL at 127.0.0.1:{port}/orders" in str(error)
    assert "secret" not in str(error)


async def test_kafka_refused_names_server_and_address(make_database: Any, tmp_path: Path) -> None:
    address = f"127.0.0.1:{_free_port()}"
    env = {"KAFKA_BOOTSTRAP_SERVERS": address, "DATABASE_URL": await make_database()}
    error = await _refused(env, tmp_path)
    assert (error.server, error.address) == ("Kafka", address)
    assert f"Kafka at {address}" in str(error)


async def test_silent_servers_fail_within_the_deadline(
    kafka: Any, make_database: Any, silent_port: int, tmp_path: Path
) -> None:
    address = f"127.0.0.1:{silent_port}"
    env = {"KAFKA_BOOTSTRAP_SERVERS": address, "DATABASE_URL": await make_database()}
    error = await _refused(env, tmp_path, deadline=1.0)
    assert (error.server, error.address) == ("Kafka", address)
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "DATABASE_URL": f"postgresql://app@{address}/db",
    }
    error = await _refused(env, tmp_path, deadline=1.0)
    assert (error.server, error.address) == ("PostgreSQL", f"{address}/db")


async def test_a_processor_started_before_its_topics_exist_sees_them_promptly(
    kafka: Any, make_database: Any, tmp_path: Path, topic: str
) -> None:
    """A processor started first (its event topics missing) picks them up once another
    process creates them: the consumer refreshes metadata within seconds, not 5 min."""
    dsn = await make_database(migrated=False)
    projection = ProjectionSettings(
        name=f"{topic}-group", pipeline_topic=f"{topic}.pipeline", shared_topic=f"{topic}.shared"
    )
    processor = asyncio.ensure_future(
        run_processor(projection, dsn, kafka.bootstrap_servers, handle_signals=False)
    )
    pipeline = Pipeline(f"late-{uuid.uuid4().hex[:8]}")

    @pipeline.task()
    async def only(context: Any) -> str:
        return "done"

    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers, "DATABASE_URL": dsn}
    try:
        await asyncio.sleep(2)  # the processor has subscribed to topics that do not exist
        async with orchestrator.connect(
            config=write_config(tmp_path, topic),
            environ=env,
            run_projector=False,
            run_snapshotter=False,
            supervise=False,
        ) as state:
            result = await state.run(pipeline)  # each step waits for the processor's read model
            assert result.result == "done"
    finally:
        processor.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await processor
