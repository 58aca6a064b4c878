"""The seed's PostgreSQL ``indexes``: the listed columns are indexed on the state tables.

Against a real PostgreSQL: what the app's start runs (``apply_migrations`` with the
plan's tables) creates the configured indexes, idempotently and under deterministic
names; an unknown column is refused by name before anything is created; and
``migrate --status`` says which exist.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from typer.testing import CliRunner

from orchestrator.app.connections import apply_migrations, open_pool
from orchestrator.app.plan import plan_app
from orchestrator.cli import app as cli
from orchestrator.config import load_config
from orchestrator.projections import IndexConfigError, TableNames

CONFIG = """\
state_management:
  backend: postgresql
  config:
    connection_string: "postgresql://ignored"
    schema:
      pipeline_states: "public.ps"
      task_states: "public.ts"
      checkpoints: "public.cp"
    indexes:
      - "pipeline_id"
      - "execution_id"
      - "status"
      - "created_at"
      - "updated_at"
      - "name"
"""


async def _indexes(dsn: str) -> dict[str, str]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT indexname, tablename FROM pg_indexes WHERE schemaname = 'public'"
        )
    finally:
        await conn.close()
    return {r["indexname"]: r["tablename"] for r in rows}


async def test_configured_indexes_exist_after_start(make_database: Any) -> None:
    dsn = await make_database(migrated=False)
    settings = load_config(CONFIG, "c.yaml").settings
    plan = plan_app(settings, bootstrap="k:9092", dsn=dsn, node_id="n1")
    assert plan.table_names.indexes[-2:] == ("updated_at", "name")
    pool = await open_pool(dsn, max_size=2)
    try:
        await apply_migrations(pool, plan.table_names)  # what App.start runs
        first = await _indexes(dsn)
        await apply_migrations(pool, plan.table_names)  # again: nothing new, no error
        assert await _indexes(dsn) == first
    finally:
        await pool.close()
    # New columns get <table>_<column>_idx on every state table that has them ...
    assert first["ps_updated_at_idx"] == "ps" and first["ts_updated_at_idx"] == "ts"
    assert first["cp_name_idx"] == "cp"
    assert "ps_name_idx" not in first  # pipeline_states has no name column
    # ... and a column the migrations already index is not indexed twice.
    assert {"ps_pipeline_id", "ts_status", "cp_created_at"} <= set(first)
    assert not any(n.endswith(("_pipeline_id_idx", "_status_idx")) for n in first)


async def test_an_unknown_column_is_refused_by_name(make_database: Any) -> None:
    dsn = await make_database(migrated=True)
    tables = TableNames(indexes=("status", "colour"))
    pool = await open_pool(dsn, max_size=1)
    try:
        with pytest.raises(IndexConfigError, match="'colour' is not a column of") as info:
            await apply_migrations(pool, tables)
    finally:
        await pool.close()
    assert info.value.column == "colour"
    assert "state_management.config.indexes" in str(info.value)
    with pytest.raises(Exception, match="not a column name"):
        load_config(
            "state_management:\n  backend: postgresql\n  config:\n    indexes: ['a; drop']\n", "c"
        )


async def test_migrate_status_says_which_indexes_exist(make_database: Any, tmp_path: Path) -> None:
    dsn = await make_database(migrated=False)
    config = tmp_path / "c.yaml"
    config.write_text(CONFIG)

    def run(*args: str) -> Any:
        return CliRunner().invoke(
            cli, ["migrate", "--database-url", dsn, "--config", str(config), *args]
        )

    await asyncio.to_thread(run)
    status = await asyncio.to_thread(run, "--status")
    assert status.exit_code == 0, status.output
    assert "ts_updated_at_idx" in status.output and "cp_name_idx" in status.output
    assert "exists" in status.output and "missing" not in status.output
