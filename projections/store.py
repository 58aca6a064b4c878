"""The PostgreSQL side of a processor: fenced offsets, state loads, bulk writes.

Every batch is one transaction (design §4)::

    check          lock the partitions' offset rows, check the fence (projections.offsets)
    load_*         read back the states the batch touches (one query per table)
    write          a binary COPY of the archive rows, then ONE statement: unnest()
                   upserts of the state tables (each table's rows as one array of its
                   row type, migration 0004), the next offsets and the NOTIFYs as
                   data-modifying CTEs — two round trips per batch, never one per event

The fence and the offset rows are ``projections.offsets``'s (one rule for every
group that writes PostgreSQL); the write here moves the offsets it checked.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import orjson

from orchestrator.events import SharedVariable
from orchestrator.projections import executions
from orchestrator.projections._batch import (
    SHARED_CHANGES_CHANNEL,
    STATE_CHANGES_CHANNEL,
    ExecutionEntry,
    VarKey,
    parse_changes,
)
from orchestrator.projections.projection import Folded, Row, Table
from orchestrator.projections.settings import ProjectionSettings, ReadModelTables

__all__ = [
    "OFFSETS_CHANNEL",
    "ROW_TYPES",
    "SHARED_CHANGES_CHANNEL",
    "STATE_CHANGES_CHANNEL",
    "PreparedWrite",
    "ReadModelStore",
    "notify_payloads",
    "parse_changes",
    "upsert_sql",
]

OFFSETS_CHANNEL = "orchestrator_projection_offsets"
"""NOTIFY channel: the name of a projection whose stored offsets advanced."""
# NOTIFYs queued in the transaction are delivered when (and only if) it commits.

_NOTIFY_LIMIT = 7900  # PostgreSQL refuses NOTIFY payloads of 8000 bytes or more


def _q(name: str) -> str:
    return f'"{name}"'


def upsert_sql(
    table: str, columns: Sequence[tuple[str, str]], key: Sequence[str], *, update: bool = True
) -> str:
    """``INSERT ... SELECT FROM unnest($1::t1[], ...) ON CONFLICT``: one array per column
    (for tools and tests; the processor sends rows, see :data:`ROW_TYPES`)."""
    arrays = ", ".join(f"${i}::{t}[]" for i, (_, t) in enumerate(columns, start=1))
    return _insert_sql(table, columns, key, update, f"unnest({arrays})")


ROW_TYPES = {
    "pipeline": "orchestrator_pipeline_row",
    "task": "orchestrator_task_row",
    "checkpoint": "orchestrator_checkpoint_row",
    "variable": "orchestrator_shared_variable_row",
}
"""The composite type (migration 0004) of each upserted row shape, by part name: the
processor sends a table's rows as ONE array of it (the migration says why)."""


def _insert_sql(
    table: str,
    columns: Sequence[tuple[str, str]],
    key: Sequence[str],
    update: bool,
    source: str,
    declared: Table | None = None,
) -> str:
    """The insert of ``source``'s rows; on a key conflict, the stored row ``t`` is
    written over (``update``: the ``declared`` table's columns, under its condition) or
    kept."""
    names = ", ".join(_q(c) for c, _ in columns)
    sql = f"INSERT INTO {table} AS t ({names}) SELECT * FROM {source}"
    conflict = ", ".join(_q(k) for k in key)
    if update:
        only = None if declared is None else declared.update
        sets = ", ".join(
            f"{_q(c)} = EXCLUDED.{_q(c)}"
            for c, _ in columns
            if c not in key and (only is None or c in only)
        )
        when = None if declared is None else declared.update_when
        where = "" if when is None else f" WHERE {when}"
        return f"{sql} ON CONFLICT ({conflict}) DO UPDATE SET {sets}{where}"
    return f"{sql} ON CONFLICT ({conflict}) DO NOTHING"


def notify_payloads(values: Iterable[str]) -> list[str]:
    """``values`` as JSON, each payload small enough for one NOTIFY: an array, or an
    object when ``values`` is a mapping (each key with its value).

    Each item is encoded once and its exact length counted (a hot path: one item per
    execution a batch changed, ~4 µs each with the stdlib's encoder, twice)."""
    mapping = values if isinstance(values, Mapping) else None
    opening, closing = (b"[", b"]") if mapping is None else (b"{", b"}")
    chunks: list[list[bytes]] = [[]]
    size = 2
    for value in sorted(values):
        item = _json(value) if mapping is None else _json(value) + b":" + _json(mapping[value])
        cost = len(item) + 1  # and a comma
        if chunks[-1] and size + cost > _NOTIFY_LIMIT:
            chunks.append([])
            size = 2
        chunks[-1].append(item)
        size += cost
    return [(opening + b",".join(chunk) + closing).decode() for chunk in chunks if chunk]


def _json(value: Any) -> bytes:
    """Compact JSON of a key or a position (orjson; what it refuses, such as a lone
    surrogate, escaped to ASCII by the stdlib)."""
    try:
        return orjson.dumps(value)
    except orjson.JSONEncodeError:
        return json.dumps(value, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class PreparedWrite:
    """What :meth:`ReadModelStore.write_prepared` sends: the rows to COPY (append
    tables: name, columns, rows), the one statement with its arguments, and how many
    offset rows it must update."""

    copies: list[tuple[str, tuple[tuple[str, str], ...], Sequence[Row]]]
    sql: str
    args: list[Any]
    offsets: int


class ReadModelStore:
    """SQL of one projection over its read model's tables (its declaration, see
    ``projections.projection``); every method runs on a caller's connection."""

    def __init__(self, settings: ProjectionSettings) -> None:
        self.settings = settings
        self.projection = settings.projection
        self.tables: ReadModelTables = settings.tables
        self.names = settings.table_names()
        self._write_cache: dict[tuple[str, ...], str] = {}

    # --- loads ---------------------------------------------------------------------

    async def load(self, conn: asyncpg.Connection, keys: Sequence[Hashable]) -> dict[Hashable, Any]:
        """The stored states of ``keys`` (the read model's ``load``)."""
        if not keys:
            return {}
        return await self.projection.fold.load(conn, self.names, keys)

    async def load_executions(
        self, conn: asyncpg.Connection, execution_ids: Iterable[str]
    ) -> dict[str, ExecutionEntry]:
        """The stored states of these executions (missing ones are absent)."""
        return await executions.load_executions(conn, self.names, execution_ids)

    async def load_variables(
        self, conn: asyncpg.Connection, keys: Iterable[VarKey]
    ) -> dict[VarKey, SharedVariable]:
        """The stored shared variables with these ``(namespace, name)`` keys."""
        return await executions.load_variables(conn, self.names, keys)

    # --- the write -----------------------------------------------------------------

    async def write(self, conn: asyncpg.Connection, changes: Folded) -> None:
        """Write every row of ``changes``, the next offsets and the NOTIFYs (inside the
        caller's transaction, after ``PostgresOffsets.check``): a binary COPY per appended
        table, then ONE statement for the rest, whatever the batch holds."""
        await self.write_prepared(conn, self.prepare(changes))

    async def write_prepared(self, conn: asyncpg.Connection, prepared: PreparedWrite) -> None:
        """:meth:`write` of rows built beforehand by :meth:`prepare`."""
        # The fence makes these positions new to the archive: a plain COPY (about twice
        # as fast as unnest here), and a duplicate would fail loudly on the primary key.
        for table, columns, rows in prepared.copies:
            await _copy(conn, table, columns, rows)
        updated = await conn.fetchval(prepared.sql, *prepared.args)
        if updated != prepared.offsets:
            raise RuntimeError(
                f"projection {self.settings.name}: {updated} offset rows updated, "
                f"expected {prepared.offsets} (were they checked with PostgresOffsets.check?)"
            )

    def prepare(self, changes: Folded) -> PreparedWrite:
        """The statement and arguments that write ``changes``: pure CPU, no I/O (the
        processor builds them with the collector paused; see ``projections._engine``)."""
        rows = changes.rows()
        copies = []
        present: list[str] = []
        args: list[Any] = []
        for table in self.projection.tables:
            found = rows.get(table.key)
            if not found:
                continue
            if table.write == "append":
                copies.append((self.names[table.key], table.columns, found))
            elif table.row_type is not None:
                present.append(table.key)
                args.append(found)  # one row-type array
            else:
                present.append(table.key)
                args.extend(list(column) for column in zip(*found, strict=True))
        offsets = sorted(changes.next_offsets.items())
        args += [
            self.settings.name,
            [tp[0] for tp, _ in offsets],
            [tp[1] for tp, _ in offsets],
            [n for _, n in offsets],
        ]
        channels, payloads = self._notifications(changes)
        args += [channels, payloads]
        return PreparedWrite(
            copies=copies, sql=self._write_sql(tuple(present)), args=args, offsets=len(offsets)
        )

    def _write_sql(self, present: tuple[str, ...]) -> str:
        sql = self._write_cache.get(present)
        if sql is None:
            sql = self._write_cache[present] = self._build_write_sql(present)
        return sql

    def _build_write_sql(self, present: tuple[str, ...]) -> str:
        ctes: list[str] = []
        n = 1
        for key in present:
            table: Table = self.projection.table(key)
            if table.row_type is not None:
                rows = f"unnest(${n}::{table.row_type}[])"
                n += 1
            else:
                arrays = [f"${n + i}::{t}[]" for i, (_, t) in enumerate(table.columns)]
                rows = f"unnest({', '.join(arrays)})"
                n += len(arrays)
            insert = _insert_sql(
                self.names[key],
                table.columns,
                table.primary_key,
                table.write == "upsert",
                rows,
                table,
            )
            ctes.append(f"w_{key} AS ({insert})")
        ctes.append(
            "w_offsets AS (UPDATE projection_offsets AS o SET next_offset = u.n,"
            f" updated_at = now() FROM unnest(${n + 1}::text[], ${n + 2}::int4[],"
            f" ${n + 3}::int8[]) AS u(t, p, n) WHERE o.projection = ${n} AND o.topic = u.t"
            " AND o.partition = u.p RETURNING 1)"
        )
        ctes.append(
            f"w_notify AS (SELECT pg_notify(c, p) FROM unnest(${n + 4}::text[],"
            f" ${n + 5}::text[]) AS u(c, p))"
        )
        return (
            "WITH " + ", ".join(ctes) + " SELECT (SELECT count(*) FROM w_offsets)"
            " + 0 * (SELECT count(*) FROM w_notify)"
        )

    def _notifications(self, changes: Folded) -> tuple[list[str], list[str]]:
        channels: list[str] = []
        payloads: list[str] = []
        if not self.settings.notify:
            return channels, payloads
        for channel, values in changes.notifications().items():
            for payload in notify_payloads(values):
                channels.append(channel)
                payloads.append(payload)
        channels.append(OFFSETS_CHANNEL)
        payloads.append(self.settings.name)
        return channels, payloads


async def _copy(
    conn: asyncpg.Connection,
    table: str,
    columns: Sequence[tuple[str, str]],
    rows: Sequence[Row],
) -> None:
    if rows:
        schema, _, name = table.rpartition(".")
        await conn.copy_records_to_table(
            name, records=rows, columns=[c for c, _ in columns], schema_name=schema or None
        )
