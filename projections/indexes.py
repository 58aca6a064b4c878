"""The seed's PostgreSQL ``indexes``: columns of the state tables that must be indexed.

For each listed column, every one of the three state tables (``pipeline_states``,
``task_states``, ``checkpoints``, under their configured names) that has the column
gets an index led by it, unless one already exists (the migrations create the seed's
four, and a primary key counts). New ones are named ``<table>_<column>_idx`` and made
with ``CREATE INDEX IF NOT EXISTS``, so running it again, or from several processes, is
harmless. A column that none of the tables has is refused by name, before anything is
created. :func:`index_status` reports which indexes exist (``migrate --status``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import asyncpg

from orchestrator.events import OrchestratorStateError, error_fields

if TYPE_CHECKING:
    from orchestrator.projections.migrator import TableNames

DEFAULT_INDEXES: tuple[str, ...] = ("pipeline_id", "execution_id", "status", "created_at")
_COLUMN = re.compile(r"^[a-z_][a-z0-9_]*$")


@error_fields("state_management.config.indexes: {column!r} {reason}")
class IndexConfigError(OrchestratorStateError):
    """A configured index names a column the state tables do not have."""

    column: str
    reason: str


@dataclass(frozen=True, slots=True)
class IndexState:
    """One (table, column) the configuration asks to index, and the index serving it."""

    table: str
    column: str
    index: str
    state: Literal["created", "exists", "missing"]


async def _columns(conn: asyncpg.Connection, table: str) -> list[str] | None:
    """The table's column names (``None``: the table does not exist)."""
    oid = await conn.fetchval("SELECT to_regclass($1)::oid", table)
    if oid is None:
        return None
    rows = await conn.fetch(
        "SELECT attname FROM pg_attribute WHERE attrelid = $1 AND attnum > 0"
        " AND NOT attisdropped ORDER BY attnum",
        oid,
    )
    return [r["attname"] for r in rows]


async def _leading_index(conn: asyncpg.Connection, table: str, column: str) -> str | None:
    """An existing index of ``table`` whose first key column is ``column``."""
    name: str | None = await conn.fetchval(
        "SELECT c.relname FROM pg_index i"
        " JOIN pg_class c ON c.oid = i.indexrelid"
        " JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]"
        " WHERE i.indrelid = to_regclass($1) AND a.attname = $2"
        " ORDER BY i.indisprimary DESC, c.relname LIMIT 1",
        table,
        column,
    )
    return name


def index_name(table: str, column: str) -> str:
    """The deterministic name of the index created for ``column`` of ``table``."""
    return f"{table.rsplit('.', 1)[-1]}_{column}_idx"[:63]


async def _plan(
    conn: asyncpg.Connection, tables: TableNames, columns: tuple[str, ...]
) -> list[tuple[str, str]]:
    """The (table, column) pairs to index; refuses unknown columns by name."""
    present = {t: await _columns(conn, t) for t in _state_tables(tables)}
    pairs: list[tuple[str, str]] = []
    for column in columns:
        if not _COLUMN.match(column):
            raise IndexConfigError(column, "is not a column name ([a-z_][a-z0-9_]*)")
        having = [t for t, cols in present.items() if cols is not None and column in cols]
        if not having and any(cols is not None for cols in present.values()):
            names = ", ".join(present)
            raise IndexConfigError(column, f"is not a column of {names}")
        pairs.extend((t, column) for t in having)
    return pairs


def _state_tables(tables: TableNames) -> tuple[str, str, str]:
    return (tables.pipeline_states, tables.task_states, tables.checkpoints)


async def ensure_indexes(conn: asyncpg.Connection, tables: TableNames) -> list[IndexState]:
    """Create the indexes ``tables.indexes`` asks for that do not exist yet."""
    out: list[IndexState] = []
    for table, column in await _plan(conn, tables, tables.indexes):
        existing = await _leading_index(conn, table, column)
        if existing is not None:
            out.append(IndexState(table, column, existing, "exists"))
            continue
        name = index_name(table, column)
        await conn.execute(f'CREATE INDEX IF NOT EXISTS "{name}" ON {table} ("{column}")')
        out.append(IndexState(table, column, name, "created"))
    return out


async def index_status(conn: asyncpg.Connection, tables: TableNames) -> list[IndexState]:
    """Which configured indexes exist (reads only; ``missing`` before ``migrate``)."""
    out = []
    for table, column in await _plan(conn, tables, tables.indexes):
        existing = await _leading_index(conn, table, column)
        if existing is None:
            out.append(IndexState(table, column, index_name(table, column), "missing"))
        else:
            out.append(IndexState(table, column, existing, "exists"))
    return out
