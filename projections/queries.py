"""Reads of the read-model tables for the rest of the product (only ``projections``
issues SQL on them).

Why: the write side's port, ``orchestrator.state``, the runtime, the CLI, the demo and
the LangGraph store all read the same tables; spelling their SQL here keeps the
tables' shape in one folder, so a column or table change touches ``projections``
only. Every method borrows a connection from the caller's pool (one per process).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from orchestrator.events import ExecutionState, NamespaceState, Position
from orchestrator.projections import readmodel as rm
from orchestrator.projections.executions import load_executions, states_of
from orchestrator.projections.settings import NEWEST_SAVE, ProjectionSettings, newest_of_its_id


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointRow:
    """A checkpoint as the read model lists it (its data is read separately)."""

    id: str
    name: str
    pipeline_id: str
    execution_id: str
    task_id: str | None
    sequence: int
    progress: float | None
    created_at: datetime
    metadata: Any


@dataclass(frozen=True, slots=True, kw_only=True)
class OffsetRow:
    """One stored offset of a projection (``projections status``)."""

    projection: str
    topic: str
    partition: int
    next_offset: int
    generation: int
    updated_at: datetime


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointQuery:
    """Conditions on live checkpoints (every given one must hold): ``before`` keeps
    names below it; ``metadata`` is contained in the checkpoint's."""

    execution_ids: Sequence[str] | None = None
    pipeline_id: str | None = None
    name: str | None = None
    before: str | None = None
    metadata: Mapping[str, Any] | None = None
    limit: int | None = None


_CHECKPOINT_COLUMNS = (
    "checkpoint_id AS id, name, pipeline_id, execution_id, task_id, sequence, progress,"
    " created_at, metadata"
)


_LIVE = "c.deleted_at IS NULL"
"""A checkpoint still listed by its execution (``CheckpointsDeleted`` withdraws it)."""


def _checkpoint_row(r: asyncpg.Record) -> CheckpointRow:
    found = dict(r)
    found["metadata"] = rm.loads(found["metadata"])
    return CheckpointRow(**found)


class ReadModelQueries:
    """The read model's queries over ``pool`` (tables named by ``settings``)."""

    def __init__(self, pool: asyncpg.Pool, settings: ProjectionSettings | None = None) -> None:
        self.pool = pool
        self.settings = settings or ProjectionSettings()
        self.names = self.settings.table_names()

    async def list_checkpoints(
        self, pipeline_id: str | None, execution_id: str | None
    ) -> list[CheckpointRow]:
        """Checkpoints of a pipeline and/or execution, oldest first: an id once per
        execution, as its newest save (the rows hold every save, migration 0019)."""
        order = "sequence" if execution_id is not None else "created_at, execution_id, sequence"
        rows = await self.pool.fetch(
            f"SELECT {_CHECKPOINT_COLUMNS} FROM {self.names['checkpoints']} AS c"
            " WHERE ($1::text IS NULL OR pipeline_id = $1)"
            " AND ($2::text IS NULL OR execution_id = $2)"
            f" AND {newest_of_its_id(self.names['checkpoints'])} ORDER BY {order}",
            pipeline_id,
            execution_id,
        )
        return [_checkpoint_row(r) for r in rows]

    async def find_checkpoint(self, checkpoint_id: str) -> CheckpointRow | None:
        """One checkpoint by id (``None``: not in the read model): its newest save, where
        an id was saved again or by several executions (hand-given ids)."""
        row = await self.pool.fetchrow(
            f"SELECT {_CHECKPOINT_COLUMNS} FROM {self.names['checkpoints']}"
            f" WHERE checkpoint_id = $1 {NEWEST_SAVE}",
            checkpoint_id,
        )
        return None if row is None else _checkpoint_row(row)

    async def checkpoint_data(self, checkpoint_id: str) -> Any:
        """The checkpoint's data as JSON (a claim-checked value as its ``$blob`` marker)."""
        raw = await self.pool.fetchval(
            f"SELECT data FROM {self.names['checkpoints']} WHERE checkpoint_id = $1 {NEWEST_SAVE}",
            checkpoint_id,
        )
        return None if raw is None else json.loads(raw)

    async def last_checkpoint_name(self, execution_id: str, task_id: str) -> str | None:
        """The name of the newest checkpoint ``task_id`` of the execution saved."""
        name: str | None = await self.pool.fetchval(
            f"SELECT name FROM {self.names['checkpoints']} WHERE execution_id = $1"
            " AND task_id = $2 ORDER BY sequence DESC LIMIT 1",
            execution_id,
            task_id,
        )
        return name

    async def live_checkpoints(
        self, pipeline_prefix: str, query: CheckpointQuery
    ) -> list[asyncpg.Record]:
        """``execution_id``, ``checkpoint_id``, ``name``, ``sequence`` and the archived
        ``raw`` event of the live checkpoints of pipelines named ``pipeline_prefix...``
        that meet ``query``, newest name first."""
        n, q = self.names, query
        rows: list[asyncpg.Record] = await self.pool.fetch(
            "SELECT c.execution_id, c.checkpoint_id, c.name, c.sequence, e.raw"
            f" FROM {n['checkpoints']} c"
            f" JOIN {n['execution_events']} e ON e.execution_id = c.execution_id"
            "  AND e.sequence = c.sequence AND e.outcome = 'applied'"
            f" WHERE starts_with(c.pipeline_id, $7) AND {_LIVE}"
            " AND ($1::text[] IS NULL OR c.execution_id = ANY($1))"
            " AND ($2::text IS NULL OR c.pipeline_id = $2)"
            " AND ($3::text IS NULL OR c.name = $3)"
            ' AND ($4::text IS NULL OR c.name COLLATE "C" < $4)'
            " AND ($5::jsonb IS NULL OR c.metadata @> $5::jsonb)"
            ' ORDER BY c.name COLLATE "C" DESC, c.execution_id LIMIT $6',
            None if q.execution_ids is None else list(q.execution_ids),
            q.pipeline_id,
            q.name,
            q.before,
            None if q.metadata is None else json.dumps(dict(q.metadata)),
            q.limit,
            pipeline_prefix,
        )
        return rows

    async def listed_checkpoints(
        self,
        pipeline_prefix: str,
        *,
        pipeline_ids: Sequence[str] | None = None,
        run_ids: Sequence[str] | None = None,
    ) -> list[asyncpg.Record]:
        """``execution_id``, ``pipeline_id``, ``checkpoint_id``, ``name``, ``sequence``,
        ``metadata`` (JSON text) of the live checkpoints of pipelines named
        ``pipeline_prefix...`` (of ``pipeline_ids``; whose metadata ``run_id`` is one of
        ``run_ids``), by execution and sequence."""
        n = self.names
        rows: list[asyncpg.Record] = await self.pool.fetch(
            "SELECT c.execution_id, c.pipeline_id, c.checkpoint_id, c.name, c.sequence,"
            f" c.metadata::text AS metadata FROM {n['checkpoints']} c"
            f" WHERE starts_with(c.pipeline_id, $3) AND {_LIVE}"
            " AND ($1::text[] IS NULL OR c.pipeline_id = ANY($1))"
            " AND ($2::text[] IS NULL OR c.metadata->>'run_id' = ANY($2))"
            " ORDER BY c.execution_id, c.sequence",
            None if pipeline_ids is None else list(pipeline_ids),
            None if run_ids is None else list(run_ids),
            pipeline_prefix,
        )
        return rows

    async def events_after_checkpoints(
        self, event_type: str, checkpoints: Sequence[tuple[str, str, int]]
    ) -> list[asyncpg.Record]:
        """``checkpoint_id`` and ``raw`` of the applied ``event_type`` events whose
        payload names one of ``checkpoints`` (execution_id, checkpoint_id, sequence)
        and that come after it, by execution and sequence."""
        if not checkpoints:
            return []
        eids, cids, seqs = (list(column) for column in zip(*checkpoints, strict=True))
        rows: list[asyncpg.Record] = await self.pool.fetch(
            "SELECT e.payload->>'checkpoint_id' AS checkpoint_id, e.raw"
            f" FROM {self.names['execution_events']} e"
            " JOIN unnest($1::text[], $2::text[], $3::bigint[]) AS k(eid, cid, seq)"
            "  ON e.execution_id = k.eid AND e.payload->>'checkpoint_id' = k.cid"
            "  AND e.sequence > k.seq"
            " WHERE e.event_type = $4 AND e.outcome = 'applied'"
            " ORDER BY e.execution_id, e.sequence",
            eids,
            cids,
            seqs,
            event_type,
        )
        return rows

    async def execution_entry(
        self, execution_id: str
    ) -> tuple[ExecutionState, Position | None] | None:
        """The execution's state and the position of the last event applied to it."""
        async with self.pool.acquire() as conn:
            found = await load_executions(conn, self.names, [execution_id])
        entry = found.get(execution_id)
        if entry is None:
            return None
        last = entry.last_position
        return entry.state, None if last is None else Position(*last)

    async def recent_executions(self, pipeline_id: str | None, limit: int) -> list[ExecutionState]:
        """The newest ``limit`` executions (of ``pipeline_id``, when given), newest first."""
        where = "" if pipeline_id is None else " WHERE pipeline_id = $2"
        args: list[object] = [limit] if pipeline_id is None else [limit, pipeline_id]
        async with self.pool.acquire() as conn:
            pipelines = await conn.fetch(
                f"SELECT * FROM {self.names['pipeline_states']}{where}"
                " ORDER BY created_at DESC NULLS LAST, execution_id LIMIT $1",
                *args,
            )
            states = await states_of(conn, self.names, pipelines)
        return list(states.values())

    async def namespace(self, namespace: str) -> NamespaceState:
        """A shared-state namespace as the read model holds it (deleted ones included)."""
        rows = await self.pool.fetch(
            f"SELECT * FROM {self.names['shared_variables']} WHERE namespace = $1 ORDER BY name",
            namespace,
        )
        variables = {r["name"]: rm.shared_variable_from_row(r) for r in rows}
        return NamespaceState(namespace=namespace, variables=variables)

    async def variables(
        self, prefix: str, *, namespace: str | None = None, name: str | None = None
    ) -> list[dict[str, Any]]:
        """``namespace``, ``name``, ``value`` (JSON text), ``updated_at`` of the live
        variables whose namespace starts with ``prefix`` (and is ``namespace``, named
        ``name``)."""
        rows = await self.pool.fetch(
            "SELECT namespace, name, value::text AS value, updated_at"
            f" FROM {self.names['shared_variables']}"
            " WHERE NOT deleted AND starts_with(namespace, $1)"
            " AND ($2::text IS NULL OR namespace = $2)"
            " AND ($3::text IS NULL OR name = $3) ORDER BY namespace, name",
            prefix,
            namespace,
            name,
        )
        return [dict(r) for r in rows]

    async def watermarks(self) -> dict[tuple[str, int], int]:
        """The next offset this projection will apply, per (topic, partition): every event
        before it is readable."""
        rows = await self.pool.fetch(
            "SELECT topic, partition, next_offset FROM projection_offsets WHERE projection = $1",
            self.settings.name,
        )
        return {(r["topic"], r["partition"]): int(r["next_offset"]) for r in rows}


async def stored_offsets(
    conn: asyncpg.Connection, projections: Sequence[str] | None = None
) -> list[OffsetRow]:
    """Every stored offset (of ``projections`` only, when given), by projection,
    topic and partition."""
    rows = await conn.fetch(
        "SELECT projection, topic, partition, next_offset, generation, updated_at"
        " FROM projection_offsets WHERE ($1::text[] IS NULL OR projection = ANY($1::text[]))"
        " ORDER BY projection, topic, partition",
        None if projections is None else list(projections),
    )
    return [OffsetRow(**dict(r)) for r in rows]
