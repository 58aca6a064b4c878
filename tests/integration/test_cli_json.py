"""``--json`` on the listings that need servers, and Kafka down while PostgreSQL is up.

Each command runs as a user runs it (a subprocess of the real CLI) against the
session's PostgreSQL and Kafka; stdout must be exactly one JSON document.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
from datetime import UTC, datetime
from typing import Any

import asyncpg
from _api_support import write_history
from _databases import MakeDatabase
from _projector_support import CLI

from orchestrator.devstack import KafkaEndpoint
from orchestrator.events import catalogue as c
from orchestrator.events.envelope import Position
from orchestrator.events.simulate import HistoryWriter
from orchestrator.snapshots.index import SnapshotRecord
from orchestrator.snapshots.postgres import PostgresSnapshotIndex


async def _cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        *CLI,
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )
    out, err = await proc.communicate()
    return proc.returncode or 0, out.decode(), err.decode()


async def _json(*args: str, env: dict[str, str] | None = None) -> Any:
    code, out, err = await _cli(*args, "--json", env=env)
    assert code == 0, err
    return json.loads(out)


async def _seed(dsn: str) -> None:
    """One dead letter and one indexed snapshot."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            'INSERT INTO dead_letters (projection, topic, partition, "offset", reason,'
            " error_class, execution_id, event_type, raw, dlq_topic)"
            " VALUES ('read_models', 't', 0, 7, 'cannot decode', 'DecodeError', 'exec_j',"
            " NULL, '\\x00ff'::bytea, 't.dlq')"
        )
        now = datetime.now(UTC)
        record = SnapshotRecord(
            execution_id="exec_j",
            pipeline_id="p",
            sequence=5,
            epoch=1,
            status="running",
            object_key="p/exec_j/5.snap",
            store="file:///tmp/x",
            position=Position("t", 0, 4),
            size_bytes=10,
            raw_size_bytes=20,
            created_at=now,
            occurred_at=now,
        )
        await PostgresSnapshotIndex(conn).add([record])
    finally:
        await conn.close()


async def test_listings_print_json(make_database: MakeDatabase) -> None:
    dsn = await make_database()
    await _seed(dsn)
    db = ("--database-url", dsn)

    letters = await _json("dlq", "list", *db)
    assert [(d["id"], d["reason"], d["execution_id"]) for d in letters] == [
        (letters[0]["id"], "cannot decode", "exec_j")
    ]
    snapshots = await _json("snapshots", "list", "exec_j", *db)
    assert [(s["sequence"], s["position"]) for s in snapshots] == [(5, "t:0:4")]
    assert await _json("projections", "status", *db) == []


async def test_executions_list_as_the_api_does(make_database: MakeDatabase) -> None:
    dsn = await make_database()
    conn = await asyncpg.connect(dsn)
    try:
        for n, execution_id in enumerate(("exec_old", "exec_new")):
            w = HistoryWriter(
                execution_id, "p", random.Random(n), clock=datetime(2024, 1, 1 + n, tzinfo=UTC)
            )
            w.emit(c.ExecutionCreated(pipeline_id="p", tasks=(c.TaskSpec(task_id="t"),)))
            if n:
                w.emit(c.ExecutionValidationStarted())
            await write_history(conn, w.events, first_offset=10 * n)
    finally:
        await conn.close()
    db = ("--database-url", dsn)

    listed = await _json("executions", *db)
    validating = await _json("executions", "--status", "validating", *db)

    assert [e["execution_id"] for e in listed] == ["exec_new", "exec_old"]
    assert [e["execution_id"] for e in validating] == ["exec_new"]


async def test_bench_prints_its_figures_as_json(kafka: KafkaEndpoint) -> None:
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers}
    figures = await _json("bench", "append", "--events", "200", "--warmup", "0", env=env)
    assert figures["events"] == 200 and figures["append_events_per_s"] > 0
    assert figures["rss_mb"] > 0  # memory printed beside the figures


async def test_kafka_down_with_postgres_up_is_one_line(make_database: MakeDatabase) -> None:
    dsn = await make_database()
    await _seed(dsn)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"
    code, _, err = await _cli(
        "dlq", "replay", "1", "--database-url", dsn, "--bootstrap-servers", address
    )
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 1 and "Traceback" not in err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert address in lines[0] and "KAFKA_BOOTSTRAP_SERVERS" in lines[0]
