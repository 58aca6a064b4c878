"""``orchestrator-state demo`` keeps to its own topics and database.

Run against the user's Kafka and PostgreSQL (named by the environment), it writes
nothing into the user's database or topics, so ``check --source log`` on the user's
data never sees the demo's executions.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from _databases import MakeDatabase
from aiokafka.admin import AIOKafkaAdminClient
from rich.console import Console

from orchestrator.demo import run_demo
from orchestrator.demo.run import DEMO_DATABASE


@pytest.mark.timeout(240)
async def test_the_demo_writes_only_its_own_topics_and_database(
    kafka: Any, make_database: MakeDatabase, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dsn = await make_database(migrated=True)
    bootstrap = kafka.bootstrap_servers
    monkeypatch.setenv("DATABASE_URL", dsn)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", bootstrap)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics_before = set(await admin.list_topics())
        out = io.StringIO()
        await run_demo(Console(file=out, width=120), data_dir=tmp_path, page_seconds=0.2)
        created = set(await admin.list_topics()) - topics_before - {"__consumer_offsets"}
    finally:
        await admin.close()
    assert "recovered" in out.getvalue()
    assert created and all(t.startswith("orchestrator-demo.") for t in created), created

    user = await asyncpg.connect(dsn)
    try:
        for table in ("pipeline_states", "execution_events", "projection_offsets"):
            assert await user.fetchval(f"SELECT count(*) FROM {table}") == 0, table
    finally:
        await user.close()
    demo = await asyncpg.connect(urlunsplit(urlsplit(dsn)._replace(path=f"/{DEMO_DATABASE}")))
    try:
        assert (
            await demo.fetchval("SELECT count(*) FROM pipeline_states WHERE status = 'completed'")
            >= 1
        )
    finally:
        await demo.close()
