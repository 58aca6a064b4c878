"""PostgreSQL adapters of the snapshot layer: the index and the offsets.

* :class:`PostgresSnapshotIndex`: the ``snapshots`` table (migration 0003);
(the snapshotter's offsets are ``projections.offsets``'s, fenced as a projection's).

asyncpg is imported here and in no other snapshot module.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, TypeAlias

import asyncpg

from orchestrator.events import Position, from_fields
from orchestrator.snapshots.index import SnapshotRecord

logger = logging.getLogger(__name__)

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")

Db: TypeAlias = "asyncpg.Pool | asyncpg.Connection"
TP = tuple[str, int]

_COLUMNS = (
    ("execution_id", "text"),
    ("sequence", "bigint"),
    ("pipeline_id", "text"),
    ("epoch", "bigint"),
    ("status", "text"),
    ("object_key", "text"),
    ("store", "text"),
    ("topic", "text"),
    ("partition", "integer"),
    ("offset", "bigint"),
    ("size_bytes", "bigint"),
    ("raw_size_bytes", "bigint"),
    ("created_at", "timestamptz"),
    ("occurred_at", "timestamptz"),
)


def _table(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"{name!r} is not a [schema.]table name")
    return name


_POSITION = frozenset({"topic", "partition", "offset"})


def _row(r: SnapshotRecord) -> tuple[Any, ...]:
    """``r``'s values in ``_COLUMNS`` order (the position's three from ``r.position``)."""
    return tuple(getattr(r.position if c in _POSITION else r, c) for c, _ in _COLUMNS)


def _record(row: Mapping[str, Any]) -> SnapshotRecord:
    position = Position(row["topic"], row["partition"], row["offset"])
    return from_fields(SnapshotRecord, row, position=position)


def _upsert_sql(table: str) -> str:
    names = ", ".join(f'"{c}"' for c, _ in _COLUMNS)
    arrays = ", ".join(f"${i}::{t}[]" for i, (_, t) in enumerate(_COLUMNS, start=1))
    sets = ", ".join(
        f'"{c}" = EXCLUDED."{c}"' for c, _ in _COLUMNS if c not in ("execution_id", "sequence")
    )
    return (
        f"INSERT INTO {table} ({names}) SELECT * FROM unnest({arrays}) "
        f"ON CONFLICT (execution_id, sequence) DO UPDATE SET {sets}"
    )


class PostgresSnapshotIndex:
    """The ``snapshots`` table; pass a pool, or a connection to work inside its transaction."""

    def __init__(self, db: Db, table: str = "snapshots") -> None:
        self._db = db
        self.table = _table(table)

    async def add(self, records: list[SnapshotRecord]) -> None:
        await add_rows(self._db, records, self.table)

    async def candidates(
        self, execution_id: str, *, max_sequence: int | None = None, limit: int | None = None
    ) -> list[SnapshotRecord]:
        try:
            rows = await self._db.fetch(
                f"SELECT * FROM {self.table} WHERE execution_id = $1"
                " AND ($2::bigint IS NULL OR sequence <= $2) ORDER BY sequence DESC LIMIT $3",
                execution_id,
                max_sequence,
                limit,
            )
        except asyncpg.UndefinedTableError:  # a database without snapshots: fold from the start
            logger.warning("no %s table in this database: replaying from the start", self.table)
            return []
        return [_record(r) for r in rows]

    async def latest(self, execution_ids: list[str]) -> dict[str, SnapshotRecord]:
        if not execution_ids:
            return {}
        rows = await self._db.fetch(
            f"SELECT DISTINCT ON (execution_id) * FROM {self.table}"
            " WHERE execution_id = ANY($1::text[]) ORDER BY execution_id, sequence DESC",
            list(execution_ids),
        )
        return {r["execution_id"]: _record(r) for r in rows}

    async def all(self) -> list[SnapshotRecord]:
        rows = await self._db.fetch(f"SELECT * FROM {self.table}")
        return [_record(r) for r in rows]

    async def rows_of_topic(self, topic: str) -> AsyncIterator[asyncpg.Record]:
        """The index rows of ``topic`` by execution and sequence, through a server-side
        cursor (``db`` must be a connection inside a transaction): a backup's read."""
        db = self._db
        if isinstance(db, asyncpg.Pool):
            raise TypeError("rows_of_topic reads through a cursor: give the index a connection")
        sql = f"SELECT * FROM {self.table} WHERE topic = $1 ORDER BY execution_id, sequence"
        async for row in db.cursor(sql, topic, prefetch=500):
            yield row

    async def remove(self, records: list[SnapshotRecord]) -> None:
        if not records:
            return
        await self._db.execute(
            f"DELETE FROM {self.table} t USING unnest($1::text[], $2::bigint[]) AS d(e, s)"
            " WHERE t.execution_id = d.e AND t.sequence = d.s",
            [r.execution_id for r in records],
            [r.sequence for r in records],
        )


async def add_rows(db: Db, records: Sequence[SnapshotRecord], table: str = "snapshots") -> None:
    """Upsert index rows in one statement (inside the caller's transaction if ``db`` is a
    connection in one)."""
    if not records:
        return
    columns = [list(col) for col in zip(*(_row(r) for r in records), strict=True)]
    await db.execute(_upsert_sql(_table(table)), *columns)
