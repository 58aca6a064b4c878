"""The read model as ``backup`` and ``restore-backup`` read and write it (only
``projections`` issues SQL on read-model tables).

Why: a backup reads the stored offsets, the archives and the wrapped data keys in one
repeatable-read transaction (one snapshot of the database), and a restore checks the
target is empty, puts the data keys back and verifies what the rebuild folded. The
SQL for those tables lives here; ``orchestrator.backup`` keeps the file format.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from typing import Any, Literal

import asyncpg

from orchestrator.projections.settings import ProjectionSettings

_DATA_KEY_COLUMNS = "scope, master_key_id, wrapped_key, created_at, erased_at"


class ReadModelExport:
    """Reads of one connection ``conn`` (the caller holds its transaction) of the read
    model configured by ``settings``."""

    def __init__(self, conn: asyncpg.Connection, settings: ProjectionSettings) -> None:
        self.conn = conn
        self.settings = settings

    async def offsets(self) -> dict[tuple[str, int], int]:
        """The next offset the projection will apply, per (topic, partition)."""
        rows = await self.conn.fetch(
            "SELECT topic, partition, next_offset FROM projection_offsets WHERE projection = $1",
            self.settings.name,
        )
        return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}

    async def archived(
        self, stream: Literal["pipeline", "shared"], topic: str, partition: int, before: int
    ) -> AsyncIterator[asyncpg.Record]:
        """``offset``, ``outcome``, ``raw`` of the archived records of ``topic[partition]``
        below offset ``before``, in log order (a server-side cursor)."""
        tables = self.settings.tables
        table = tables.execution_events if stream == "pipeline" else tables.shared_events
        sql = (
            f'SELECT "offset", outcome, raw FROM {table}'
            ' WHERE topic = $1 AND partition = $2 AND "offset" < $3 ORDER BY "offset"'
        )
        async for row in self.conn.cursor(sql, topic, partition, before, prefetch=1000):
            yield row

    async def data_keys(self) -> AsyncIterator[asyncpg.Record]:
        """The rows of ``data_keys`` (wrapped keys and erasure tombstones) by scope; none
        in a database from before encryption existed."""
        if not await self.conn.fetchval("SELECT to_regclass('data_keys') IS NOT NULL"):
            return
        sql = f"SELECT {_DATA_KEY_COLUMNS} FROM data_keys ORDER BY scope"
        async with self.conn.transaction(readonly=True):
            async for row in self.conn.cursor(sql, prefetch=1000):
                yield row


async def tables_holding_rows(pool: asyncpg.Pool, tables: Iterable[str]) -> list[str]:
    """Which of ``tables`` exist and hold at least one row (a restore's target must not)."""
    held = []
    for table in tables:
        if await pool.fetchval("SELECT to_regclass($1) IS NOT NULL", table):
            if await pool.fetchval(f"SELECT EXISTS (SELECT 1 FROM {table})"):
                held.append(table)
    return held


async def restore_data_keys(pool: asyncpg.Pool, rows: Sequence[Sequence[Any]]) -> None:
    """Insert backed-up ``data_keys`` rows (scope, master_key_id, wrapped_key,
    created_at, erased_at) in one transaction."""
    sql = f"INSERT INTO data_keys ({_DATA_KEY_COLUMNS}) VALUES ($1, $2, $3, $4, $5)"
    async with pool.acquire() as conn, conn.transaction():
        await conn.executemany(sql, rows)


async def last_sequences(pool: asyncpg.Pool, settings: ProjectionSettings) -> dict[str, int]:
    """``execution_id -> last_sequence`` of every execution in the read model."""
    rows = await pool.fetch(
        f"SELECT execution_id, last_sequence FROM {settings.tables.pipeline_states}"
    )
    return {r["execution_id"]: r["last_sequence"] for r in rows}
