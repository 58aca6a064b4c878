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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

import asyncpg

from orchestrator.events.state import AppliedIds, SharedVariable
from orchestrator.projections import readmodel as rm
from orchestrator.projections._batch import BatchChanges, ExecutionEntry, VarKey
from orchestrator.projections.settings import ProjectionSettings, ReadModelTables

STATE_CHANGES_CHANNEL = "orchestrator_state_changes"
"""NOTIFY channel: a JSON array of the execution ids a commit changed."""
SHARED_CHANGES_CHANNEL = "orchestrator_shared_changes"
"""NOTIFY channel: a JSON array of the shared-state namespaces a commit changed."""
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
    table: str, columns: Sequence[tuple[str, str]], key: Sequence[str], update: bool, source: str
) -> str:
    names = ", ".join(_q(c) for c, _ in columns)
    sql = f"INSERT INTO {table} ({names}) SELECT * FROM {source}"
    conflict = ", ".join(_q(k) for k in key)
    if update:
        sets = ", ".join(f"{_q(c)} = EXCLUDED.{_q(c)}" for c, _ in columns if c not in key)
        return f"{sql} ON CONFLICT ({conflict}) DO UPDATE SET {sets}"
    return f"{sql} ON CONFLICT ({conflict}) DO NOTHING"


def notify_payloads(values: Iterable[str]) -> list[str]:
    """JSON arrays of ``values``, each small enough for one NOTIFY."""
    payloads: list[str] = []
    chunk: list[str] = []
    size = 2
    for value in sorted(values):
        cost = len(json.dumps(value, ensure_ascii=False).encode()) + 1  # and a comma
        if chunk and size + cost > _NOTIFY_LIMIT:
            payloads.append(_compact(chunk))
            chunk, size = [], 2
        chunk.append(value)
        size += cost
    if chunk:
        payloads.append(_compact(chunk))
    return payloads


def _compact(values: list[str]) -> str:
    return json.dumps(values, separators=(",", ":"), ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class PreparedWrite:
    """What :meth:`ReadModelStore.write_prepared` sends: the archive rows to COPY, the
    one statement with its arguments, and how many offset rows it must update."""

    events: list[rm.Row]
    shared_events: list[rm.Row]
    sql: str
    args: list[Any]
    offsets: int


class ReadModelStore:
    """SQL of one projection over its tables; every method runs on a caller's connection."""

    def __init__(self, settings: ProjectionSettings) -> None:
        self.settings = settings
        self.tables: ReadModelTables = settings.tables
        self._write_cache: dict[tuple[str, ...], str] = {}

    # --- loads ---------------------------------------------------------------------

    async def load_executions(
        self, conn: asyncpg.Connection, execution_ids: Iterable[str]
    ) -> dict[str, ExecutionEntry]:
        """The stored states of these executions (missing ones are absent)."""
        ids = list(execution_ids)
        if not ids:
            return {}
        t = self.tables
        pipelines = await conn.fetch(
            f"SELECT * FROM {t.pipeline_states} WHERE execution_id = ANY($1::text[])", ids
        )
        if not pipelines:
            return {}
        tasks = await conn.fetch(
            f"SELECT * FROM {t.task_states} WHERE execution_id = ANY($1::text[])",
            [p["execution_id"] for p in pipelines],
        )
        by_execution: dict[str, list[Any]] = {}
        for row in tasks:
            by_execution.setdefault(row["execution_id"], []).append(row)
        applied = await self._applied_ids(conn, [p["execution_id"] for p in pipelines])
        out: dict[str, ExecutionEntry] = {}
        for p in pipelines:
            eid = p["execution_id"]
            last = (
                None
                if p["last_topic"] is None
                else (p["last_topic"], p["last_partition"], p["last_offset"])
            )
            state = rm.execution_from_rows(p, by_execution.get(eid, []))
            known = applied.get(eid)
            if known is not None and known.known().stop - 1 == state.last_sequence:
                state = replace(state, applied=known)
            out[eid] = ExecutionEntry(
                state=state,
                event_count=p["event_count"],
                tp=(p["last_topic"] or "", p["last_partition"] or 0),
                last_position=last,
            )
        return out

    async def _applied_ids(
        self, conn: asyncpg.Connection, execution_ids: list[str]
    ) -> dict[str, AppliedIds]:
        """The ids of the events applied to each execution, from the archive (the fold
        tells a duplicate from another record at a taken sequence by them)."""
        rows = await conn.fetch(
            f"SELECT execution_id, sequence, event_id FROM {self.tables.execution_events}"
            " WHERE execution_id = ANY($1::text[]) AND outcome = 'applied'"
            " AND sequence IS NOT NULL ORDER BY execution_id, sequence",
            execution_ids,
        )
        out: dict[str, AppliedIds] = {}
        run: list[str] = []
        current: str | None = None
        first = expected = 0
        for r in rows:
            eid, seq = r["execution_id"], r["sequence"]
            if eid != current or seq != expected:  # a new execution, or a hole: restart
                if current is not None and run:
                    out[current] = AppliedIds(run, first - 1)
                current, run, first = eid, [], seq
            run.append(r["event_id"])
            expected = seq + 1
        if current is not None and run:
            out[current] = AppliedIds(run, first - 1)
        return out

    async def load_variables(
        self, conn: asyncpg.Connection, keys: Iterable[VarKey]
    ) -> dict[VarKey, SharedVariable]:
        """The stored shared variables with these ``(namespace, name)`` keys."""
        keys = list(keys)
        if not keys:
            return {}
        rows = await conn.fetch(
            f"SELECT * FROM {self.tables.shared_variables} WHERE (namespace, name) IN"
            " (SELECT * FROM unnest($1::text[], $2::text[]))",
            [k[0] for k in keys],
            [k[1] for k in keys],
        )
        return {(r["namespace"], r["name"]): rm.shared_variable_from_row(r) for r in rows}

    # --- the write -----------------------------------------------------------------

    async def write(self, conn: asyncpg.Connection, changes: BatchChanges) -> None:
        """Write every row of ``changes``, the next offsets and the NOTIFYs (inside the
        caller's transaction, after ``PostgresOffsets.check``) in two round trips whatever the
        batch holds: a binary COPY of the archive, then ONE statement for the rest."""
        await self.write_prepared(conn, self.prepare(changes))

    async def write_prepared(self, conn: asyncpg.Connection, prepared: PreparedWrite) -> None:
        """:meth:`write` of rows built beforehand by :meth:`prepare`."""
        # The fence makes these positions new to the archive: a plain COPY (about twice
        # as fast as unnest here), and a duplicate would fail loudly on the primary key.
        t = self.tables
        await _copy(conn, t.execution_events, rm.EVENT_COLUMNS, prepared.events)
        await _copy(conn, t.shared_events, rm.SHARED_EVENT_COLUMNS, prepared.shared_events)
        updated = await conn.fetchval(prepared.sql, *prepared.args)
        if updated != prepared.offsets:
            raise RuntimeError(
                f"projection {self.settings.name}: {updated} offset rows updated, "
                f"expected {prepared.offsets} (were they checked with PostgresOffsets.check?)"
            )

    def prepare(self, changes: BatchChanges) -> PreparedWrite:
        """The statement and arguments that write ``changes``: pure CPU, no I/O (the
        processor builds them with the collector paused; see ``projections._engine``)."""
        parts: list[tuple[str, Sequence[tuple[str, str]], list[rm.Row]]] = [
            ("pipeline", rm.PIPELINE_COLUMNS, changes.pipeline_rows()),
            ("task", rm.TASK_COLUMNS, changes.task_rows()),
            ("checkpoint", rm.CHECKPOINT_COLUMNS, changes.checkpoints),
            ("variable", rm.SHARED_VARIABLE_COLUMNS, changes.variable_rows()),
        ]
        present = tuple(name for name, _, rows in parts if rows)
        args: list[Any] = [rows for _, _, rows in parts if rows]  # one row-type array each
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
            events=changes.events,
            shared_events=changes.shared_events,
            sql=self._write_sql(present),
            args=args,
            offsets=len(offsets),
        )

    def _write_sql(self, present: tuple[str, ...]) -> str:
        sql = self._write_cache.get(present)
        if sql is None:
            sql = self._write_cache[present] = self._build_write_sql(present)
        return sql

    def _build_write_sql(self, present: tuple[str, ...]) -> str:
        t = self.tables
        targets = {
            "pipeline": (t.pipeline_states, rm.PIPELINE_COLUMNS, ["execution_id"], True),
            "task": (t.task_states, rm.TASK_COLUMNS, ["execution_id", "task_id"], True),
            "checkpoint": (t.checkpoints, rm.CHECKPOINT_COLUMNS, ["checkpoint_id"], False),
            "variable": (
                t.shared_variables,
                rm.SHARED_VARIABLE_COLUMNS,
                ["namespace", "name"],
                True,
            ),
        }
        ctes: list[str] = []
        n = 1
        for name in present:
            table, columns, key, update = targets[name]
            rows = f"unnest(${n}::{ROW_TYPES[name]}[])"
            ctes.append(f"w_{name} AS ({_insert_sql(table, columns, key, update, rows)})")
            n += 1
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

    def _notifications(self, changes: BatchChanges) -> tuple[list[str], list[str]]:
        channels: list[str] = []
        payloads: list[str] = []
        if not self.settings.notify:
            return channels, payloads
        for channel, values in (
            (STATE_CHANGES_CHANNEL, changes.changed_executions),
            (SHARED_CHANGES_CHANNEL, changes.changed_namespaces),
        ):
            for payload in notify_payloads(values):
                channels.append(channel)
                payloads.append(payload)
        channels.append(OFFSETS_CHANNEL)
        payloads.append(self.settings.name)
        return channels, payloads


async def _copy(
    conn: asyncpg.Connection, table: str, columns: Sequence[tuple[str, str]], rows: list[rm.Row]
) -> None:
    if rows:
        schema, _, name = table.rpartition(".")
        await conn.copy_records_to_table(
            name, records=rows, columns=[c for c, _ in columns], schema_name=schema or None
        )
