"""Rows written into a read model's tables without folding, and counted (only
``projections`` issues SQL on read-model tables).

Why: the benchmarks fill a read model with rows "as the processor writes them" (a
million executions are not folded to measure a read), and count what the processor
archived. They go through the :class:`Projection` declaration: each table's columns
come from it, so a column change there reaches them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import asyncpg

from orchestrator.projections.executions import EXECUTIONS
from orchestrator.projections.projection import Projection, Row


async def copy_rows(
    conn: asyncpg.Connection,
    rows: Mapping[str, Sequence[Row]],
    *,
    projection: Projection = EXECUTIONS,
    names: Mapping[str, str] = {},
) -> None:
    """COPY ``rows`` (by table key, each row in the declared column order) into the
    tables of ``projection`` (named by ``names``, else their defaults)."""
    where = projection.names(names)
    for key, table_rows in rows.items():
        columns = [c for c, _ in projection.table(key).columns]
        schema, _, table = where[key].rpartition(".")
        await conn.copy_records_to_table(
            table, records=table_rows, columns=columns, schema_name=schema or None
        )


async def row_count(
    conn: asyncpg.Connection,
    key: str,
    *,
    projection: Projection = EXECUTIONS,
    names: Mapping[str, str] = {},
) -> int:
    """How many rows the table ``key`` of ``projection`` holds."""
    table = projection.names(names)[key]
    return int(await conn.fetchval(f"SELECT count(*) FROM {table}"))
