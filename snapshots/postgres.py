"""PostgreSQL adapters of the snapshot layer: the index, the event archive, the offsets.

* :class:`PostgresSnapshotIndex`: the ``snapshots`` table (migration 0003);
* :class:`PostgresEventArchive`: the projection's ``execution_events`` archive (raw
  Avro bytes, decoded with the event codec) and its ``checkpoints`` table;
(the snapshotter's offsets are ``projections.offsets``'s, fenced as a projection's).

asyncpg is imported here and in no other snapshot module.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, TypeAlias

import asyncpg

from orchestrator.events.envelope import Envelope, Position
from orchestrator.events.errors import DecodeError
from orchestrator.events.log import EventCodecLike
from orchestrator.snapshots.index import SnapshotRecord
from orchestrator.snapshots.restore import ArchivedEvent

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


def _row(r: SnapshotRecord) -> tuple[Any, ...]:
    p = r.position
    return (
        r.execution_id,
        r.sequence,
        r.pipeline_id,
        r.epoch,
        r.status,
        r.object_key,
        r.store,
        p.topic,
        p.partition,
        p.offset,
        r.size_bytes,
        r.raw_size_bytes,
        r.created_at,
        r.occurred_at,
    )


def _record(row: Mapping[str, Any]) -> SnapshotRecord:
    return SnapshotRecord(
        execution_id=row["execution_id"],
        pipeline_id=row["pipeline_id"],
        sequence=row["sequence"],
        epoch=row["epoch"],
        status=row["status"],
        object_key=row["object_key"],
        store=row["store"],
        position=Position(row["topic"], row["partition"], row["offset"]),
        size_bytes=row["size_bytes"],
        raw_size_bytes=row["raw_size_bytes"],
        created_at=row["created_at"],
        occurred_at=row["occurred_at"],
    )


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
        rows = await self._db.fetch(
            f"SELECT * FROM {self.table} WHERE execution_id = $1"
            " AND ($2::bigint IS NULL OR sequence <= $2) ORDER BY sequence DESC LIMIT $3",
            execution_id,
            max_sequence,
            limit,
        )
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


class PostgresEventArchive:
    """The projection's archive of execution events, decoded with the event codec."""

    def __init__(
        self,
        db: Db,
        codec: EventCodecLike,
        *,
        events_table: str = "public.execution_events",
        checkpoints_table: str = "public.checkpoints",
    ) -> None:
        self._db = db
        self._codec = codec
        self.events_table = _table(events_table)
        self.checkpoints_table = _table(checkpoints_table)

    async def events(
        self,
        execution_id: str,
        *,
        after: tuple[int, int] | None = None,
        before: tuple[int, int] | None = None,
        limit: int | None = None,
    ) -> Sequence[ArchivedEvent]:
        lo = after or (-1, -1)
        hi = before or (2**31 - 1, 2**63 - 1)
        # Row comparisons on (partition, "offset") are index conditions of the
        # (execution_id, partition, "offset") index: a range scan, not a filter.
        rows = await self._db.fetch(
            f'SELECT topic, partition, "offset", raw FROM {self.events_table}'
            ' WHERE execution_id = $1 AND (partition, "offset") > ($2::int, $3::bigint)'
            ' AND (partition, "offset") < ($4::int, $5::bigint)'
            ' ORDER BY partition, "offset" LIMIT $6',
            execution_id,
            lo[0],
            lo[1],
            hi[0],
            hi[1],
            limit,
        )
        decode = self._codec.decode
        return [
            ArchivedEvent(Position(r["topic"], r["partition"], r["offset"]), envelope)
            for r in rows
            if (envelope := _decode(decode, r)) is not None
        ]

    async def first_after(self, execution_id: str, when: datetime) -> tuple[int, int] | None:
        row = await self._db.fetchrow(
            f'SELECT partition, "offset" FROM {self.events_table}'
            ' WHERE execution_id = $1 AND occurred_at > $2 ORDER BY partition, "offset" LIMIT 1',
            execution_id,
            when,
        )
        return None if row is None else (row["partition"], row["offset"])

    async def checkpoint(self, checkpoint_id: str) -> tuple[str, int] | None:
        row = await self._db.fetchrow(
            f"SELECT execution_id, sequence FROM {self.checkpoints_table} WHERE checkpoint_id = $1",
            checkpoint_id,
        )
        return None if row is None else (row["execution_id"], row["sequence"])


def _decode(decode: Any, row: Mapping[str, Any]) -> Envelope | None:
    """The archived event, or ``None`` when the codec refuses it now (over a limit): the
    processor would dead-letter it, so it is in no execution's fold."""
    try:
        envelope: Envelope = decode(bytes(row["raw"]))
    except DecodeError:
        return None
    return envelope


async def create_pool(dsn: str, *, max_size: int = 4) -> asyncpg.Pool:
    """The one asyncpg pool of a snapshotter or CLI process."""
    pool: asyncpg.Pool = await asyncpg.create_pool(dsn, min_size=1, max_size=max_size)
    return pool
