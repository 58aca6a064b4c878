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
