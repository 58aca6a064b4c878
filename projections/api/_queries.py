"""The SQL the API runs, in one place, against the read-model tables.

Table names come from ``ReadModelTables`` (validated identifiers), so formatting them into
the SQL once at startup is safe; every value is a bind parameter. Each method is one
round trip on a pooled connection.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from orchestrator.projections.executions import EXECUTIONS
from orchestrator.projections.settings import ReadModelTables, newest_of_its_id

_EXECUTION_COLUMNS = """
    execution_id, pipeline_id, status, epoch, owner, last_sequence, created_at,
    started_at, updated_at, completed_at, progress, current_task, completed_tasks,
    pending_tasks, context, error, outputs, forked_from, fork_sequence,
    root_execution_id, event_count, last_topic, last_partition, last_offset
"""
_LISTED = """
    (SELECT coalesce(jsonb_agg(jsonb_build_object(
        'checkpoint_id', c.checkpoint_id, 'name', c.name, 'task_id', c.task_id,
        'timestamp', to_char(c.created_at AT TIME ZONE 'UTC',
                             'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'),
        'sequence', c.sequence, 'progress', c.progress) ORDER BY c.sequence), '[]')
     FROM {checkpoints} AS c WHERE c.execution_id = p.execution_id AND c.deleted_at IS NULL
    ) AS checkpoints
"""
"""The seed's ``checkpoints`` list of the pipeline state: its live checkpoint rows."""
_SUMMARY_COLUMNS = """
    execution_id, pipeline_id, status, created_at, started_at, updated_at, completed_at,
    progress, current_task, error, epoch, last_sequence, forked_from, root_execution_id
"""


def _storable(*values: str | None) -> bool:
    """Whether PostgreSQL ``text`` can hold every value (it cannot hold NUL).

    A key PostgreSQL cannot store matches no row, so lookups with one answer "none"
    instead of letting the driver fail.
    """
    return all(value is None or "\x00" not in value for value in values)


@dataclass(frozen=True, slots=True)
class ExecutionFilter:
    """``GET /executions`` filters; ``after`` is the keyset of the last row seen."""

    pipeline_id: str | None = None
    statuses: Sequence[str] = ()
    created_after: datetime | None = None
    created_before: datetime | None = None
    after: tuple[datetime | None, str] | None = None


Row = dict[str, Any]
"""A read-model row, ``jsonb`` columns decoded."""

_JSONB = frozenset(
    {"checkpoints", *(c for t in EXECUTIONS.tables for c, kind in t.columns if kind == "jsonb")}
)
"""The ``jsonb`` columns the read model declares: decoded here, so the API reads the
process's one pool as every other reader does (no type codec on its connections)."""


def decoded(row: Mapping[str, Any]) -> Row:
    """``row`` as a dict, its declared ``jsonb`` columns parsed."""
    return {
        k: json.loads(v) if k in _JSONB and isinstance(v, str | bytes) else v
        for k, v in row.items()
    }


def _decoded_all(rows: Iterable[Mapping[str, Any]]) -> list[Row]:
    return [decoded(r) for r in rows]


class Queries:
    """Read-only queries over the read models named by ``tables``."""

    def __init__(self, tables: ReadModelTables) -> None:
        self.tables = tables
        self._get_execution = (
            f"SELECT {_EXECUTION_COLUMNS}, {_LISTED.format(checkpoints=tables.checkpoints)}"
            f" FROM {tables.pipeline_states} AS p WHERE execution_id = $1"
        )
        self._exists = f"SELECT 1 FROM {tables.pipeline_states} WHERE execution_id = $1"
        self._tasks = (
            f"SELECT * FROM {tables.task_states} WHERE execution_id = $1 ORDER BY ordinal, task_id"
        )
        self._checkpoints = (
            f"SELECT * FROM {tables.checkpoints} AS c WHERE execution_id = $1 AND sequence > $2"
            f" AND {newest_of_its_id(tables.checkpoints)}"
            " ORDER BY sequence, created_at, checkpoint_id LIMIT $3"
        )
        self._events = (
            'SELECT topic, partition, "offset", sequence, epoch, event_id, event_type,'
            f" occurred_at, outcome, reason, payload FROM {tables.execution_events}"
            ' WHERE execution_id = $1 AND "offset" > $2 ORDER BY "offset", partition LIMIT $3'
        )
        self._variables = (
            "SELECT name, type, value, updated_by, updated_at, immutable, version"
            f" FROM {tables.shared_variables} WHERE namespace = $1 AND NOT deleted ORDER BY name"
        )

    async def execution(self, pool: asyncpg.Pool, execution_id: str) -> Row | None:
        """One execution's row, or ``None``."""
        if not _storable(execution_id):
            return None
        found = await pool.fetchrow(self._get_execution, execution_id)
        return None if found is None else decoded(found)

    async def execution_exists(self, pool: asyncpg.Pool, execution_id: str) -> bool:
        """Whether the read model knows the execution."""
        if not _storable(execution_id):
            return False
        return await pool.fetchval(self._exists, execution_id) is not None

    async def executions(self, pool: asyncpg.Pool, where: ExecutionFilter, limit: int) -> list[Row]:
        """A page of execution summaries, newest first.

        Keyset pagination on ``(created_at, execution_id)`` descending: stable under
        concurrent inserts, and a backward scan of the ``(created_at, execution_id)``
        index, which is why rows without ``created_at`` (none that the fold makes)
        come first, as that scan yields them.
        """
        if not _storable(where.pipeline_id):
            return []
        clauses: list[str] = []
        args: list[object] = []

        def arg(value: object) -> str:
            args.append(value)
            return f"${len(args)}"

        if where.pipeline_id is not None:
            clauses.append(f"pipeline_id = {arg(where.pipeline_id)}")
        if where.statuses:
            clauses.append(f"status = ANY({arg(list(where.statuses))}::text[])")
        if where.created_after is not None:
            clauses.append(f"created_at > {arg(where.created_after)}")
        if where.created_before is not None:
            clauses.append(f"created_at < {arg(where.created_before)}")
        if where.after is not None:
            created_at, execution_id = where.after
            if created_at is None:
                clauses.append(f"(created_at IS NOT NULL OR execution_id < {arg(execution_id)})")
            else:
                clauses.append(
                    f"(created_at, execution_id) < ({arg(created_at)}, {arg(execution_id)})"
                )
        sql = f"SELECT {_SUMMARY_COLUMNS} FROM {self.tables.pipeline_states}"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += f" ORDER BY created_at DESC, execution_id DESC LIMIT {arg(limit)}"
        return _decoded_all(await pool.fetch(sql, *args))

    async def tasks(self, pool: asyncpg.Pool, execution_id: str) -> list[Row]:
        """Every task of the execution."""
        if not _storable(execution_id):
            return []
        return _decoded_all(await pool.fetch(self._tasks, execution_id))

    async def checkpoints(
        self, pool: asyncpg.Pool, execution_id: str, after: int = -1, limit: int = 2**31 - 1
    ) -> list[Row]:
        """The execution's checkpoints after sequence ``after``, oldest first, at most
        ``limit``."""
        if not _storable(execution_id):
            return []
        return _decoded_all(await pool.fetch(self._checkpoints, execution_id, after, limit))

    async def events(
        self, pool: asyncpg.Pool, execution_id: str, after: int, limit: int
    ) -> list[Row]:
        """Archived events after log offset ``after``, in log order.

        An execution's events share one partition (the topic is keyed by execution
        id), so the offset alone orders them.
        """
        if not _storable(execution_id):
            return []
        return _decoded_all(await pool.fetch(self._events, execution_id, after, limit))

    async def variables(self, pool: asyncpg.Pool, namespace: str) -> list[Row]:
        """The live (not deleted) variables of a namespace, by name."""
        if not _storable(namespace):
            return []
        return _decoded_all(await pool.fetch(self._variables, namespace))

    async def timeline_events(self, pool: asyncpg.Pool, execution_id: str, limit: int) -> list[Row]:
        """The first ``limit`` archived events of the execution, in log order (every
        outcome), with what the timeline draws."""
        rows = await pool.fetch(
            'SELECT sequence, event_type, occurred_at, outcome, epoch, payload, partition, "offset"'
            f" FROM {self.tables.execution_events} WHERE execution_id = $1"
            ' ORDER BY partition, "offset" LIMIT $2',
            execution_id,
            limit,
        )
        return _decoded_all(rows)

    async def table_sizes(self, pool: asyncpg.Pool) -> dict[str, int]:
        """``pg_total_relation_size`` of each table the read model declares that exists."""
        names = list(EXECUTIONS.names(dict(self.tables.items())).values())
        rows = await pool.fetch(
            "SELECT name, pg_total_relation_size(to_regclass(name)) AS size"
            " FROM unnest($1::text[]) AS name WHERE to_regclass(name) IS NOT NULL",
            names,
        )
        return {row["name"]: int(row["size"]) for row in rows}

    async def checkpoint_count(self, pool: asyncpg.Pool) -> int:
        """How many checkpoints the read model holds."""
        return int(await pool.fetchval(f"SELECT count(*) FROM {self.tables.checkpoints}"))
