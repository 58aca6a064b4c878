"""The migrations: applied once, safe to run again, and in step with the code.

The processor sends each table's rows as one array of a row type (migration 0004);
those types must list exactly the columns, in order and type, that
``projections.readmodel`` builds rows with, or every batch would fail.
"""

from __future__ import annotations

import asyncpg
import pytest
from _databases import MakeDatabase

from orchestrator.projections import readmodel as rm
from orchestrator.projections.migrator import migrate
from orchestrator.projections.store import ROW_TYPES

_COLUMNS = {
    "pipeline": rm.PIPELINE_COLUMNS,
    "task": rm.TASK_COLUMNS,
    "checkpoint": rm.CHECKPOINT_COLUMNS,
    "variable": rm.SHARED_VARIABLE_COLUMNS,
}


async def _attributes(conn: asyncpg.Connection, type_name: str) -> list[tuple[str, str]]:
    rows = await conn.fetch(
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod) AS type"
        " FROM pg_attribute a WHERE a.attrelid = $1::regtype::text::regclass"
        " AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
        type_name,
    )
    return [(r["attname"], r["type"]) for r in rows]


async def _canonical(conn: asyncpg.Connection, sql_type: str) -> str:
    """``timestamptz`` -> ``timestamp with time zone``, as format_type spells it."""
    name: str = await conn.fetchval("SELECT format_type($1::regtype, NULL)", sql_type)
    return name


@pytest.mark.parametrize("part", sorted(ROW_TYPES))
async def test_each_row_type_lists_the_columns_the_rows_are_built_with(
    make_database: MakeDatabase, part: str
) -> None:
    conn = await asyncpg.connect(await make_database())
    try:
        expected = [(name, await _canonical(conn, t)) for name, t in _COLUMNS[part]]
        assert await _attributes(conn, ROW_TYPES[part]) == expected
    finally:
        await conn.close()


async def test_migrating_again_applies_nothing(make_database: MakeDatabase) -> None:
    conn = await asyncpg.connect(await make_database(migrated=False))
    try:
        first = await migrate(conn)
        assert first[0].startswith("0001_") and any(n.startswith("0004_") for n in first)
        assert await migrate(conn) == []
    finally:
        await conn.close()


async def test_the_checkpoint_list_moves_from_the_pipeline_row_to_checkpoint_rows(
    make_database: MakeDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A database from before migration 0015 keeps its checkpoint lists: the checkpoints
    its pipeline rows no longer listed (deleted) are marked withdrawn, the rest stay."""
    from orchestrator.projections import migrator

    every = migrator._migration_files()
    conn = await asyncpg.connect(await make_database(migrated=False))
    try:
        with monkeypatch.context() as m:
            m.setattr(migrator, "_migration_files", lambda: [f for f in every if f[0] < 15])
            await migrate(conn)
        listed = '[{"checkpoint_id": "a"}, {"checkpoint_id": "c"}]'
        await conn.execute(
            "INSERT INTO pipeline_states (execution_id, pipeline_id, status, epoch,"
            " last_sequence, updated_at, checkpoints)"
            " VALUES ('e', 'p', 'running', 1, 9, '2024-01-15T10:00:00Z', $1::jsonb)",
            listed,
        )
        for cid, seq in (("a", 2), ("b", 3), ("c", 4)):
            await conn.execute(
                "INSERT INTO checkpoints (checkpoint_id, execution_id, pipeline_id, name,"
                " sequence, created_at) VALUES ($1, 'e', 'p', $1, $2, now())",
                cid,
                seq,
            )
        assert [n for n in await migrate(conn) if n.startswith("0015_")]
        rows = await conn.fetch("SELECT checkpoint_id, deleted_at FROM checkpoints ORDER BY 1")
        assert [(r["checkpoint_id"], r["deleted_at"] is None) for r in rows] == [
            ("a", True),
            ("b", False),
            ("c", True),
        ]
        columns = await conn.fetch(
            "SELECT column_name FROM information_schema.columns"
            " WHERE table_name = 'pipeline_states'"
        )
        assert "checkpoints" not in {r["column_name"] for r in columns}
    finally:
        await conn.close()


async def test_a_database_that_applied_an_earlier_text_of_a_rewritten_migration_migrates(
    make_database: MakeDatabase,
) -> None:
    """0015 was rewritten (set-based, same rows): a database that recorded the first
    text's checksum is not refused as changed; any other checksum still is."""
    conn = await asyncpg.connect(await make_database())
    try:
        first = "d5e4be1ca7ea7a64809f933a9407755b3a34d342d5484dea5d2e7c2ffd58a94c"
        await conn.execute("UPDATE schema_migrations SET checksum = $1 WHERE version = 15", first)
        assert await migrate(conn) == []
        await conn.execute("UPDATE schema_migrations SET checksum = 'x' WHERE version = 15")
        with pytest.raises(RuntimeError, match=r"0015_.* changed after it was applied"):
            await migrate(conn)
    finally:
        await conn.close()
