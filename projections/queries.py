"""Reads of the read-model tables for the rest of the product (only ``projections``
issues SQL on them).

Why: the write side's port, ``orchestrator.state``, the runtime, the CLI, the demo and
the LangGraph store all read the same tables; spelling their SQL here keeps the
tables' shape in one folder, so a column or table change touches ``projections``
only. Every method borrows a connection from the caller's pool (one per process).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from orchestrator.events import ExecutionState, NamespaceState, Position
from orchestrator.projections import readmodel as rm
from orchestrator.projections.executions import load_executions
from orchestrator.projections.settings import ProjectionSettings


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


_CHECKPOINT_COLUMNS = (
    "checkpoint_id AS id, name, pipeline_id, execution_id, task_id, sequence, progress,"
    " created_at, metadata"
)


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
        """Checkpoints of a pipeline and/or execution, oldest first."""
        order = "sequence" if execution_id is not None else "created_at, execution_id, sequence"
        rows = await self.pool.fetch(
            f"SELECT {_CHECKPOINT_COLUMNS} FROM {self.names['checkpoints']}"
            " WHERE ($1::text IS NULL OR pipeline_id = $1)"
            " AND ($2::text IS NULL OR execution_id = $2)"
            f" ORDER BY {order}",
            pipeline_id,
            execution_id,
        )
        return [_checkpoint_row(r) for r in rows]

    async def find_checkpoint(self, checkpoint_id: str) -> CheckpointRow | None:
        """One checkpoint by id (``None``: not in the read model)."""
        row = await self.pool.fetchrow(
            f"SELECT {_CHECKPOINT_COLUMNS} FROM {self.names['checkpoints']}"
            " WHERE checkpoint_id = $1",
            checkpoint_id,
        )
        return None if row is None else _checkpoint_row(row)

    async def checkpoint_data(self, checkpoint_id: str) -> Any:
        """The checkpoint's data as JSON (a claim-checked value as its ``$blob`` marker)."""
        raw = await self.pool.fetchval(
            f"SELECT data FROM {self.names['checkpoints']} WHERE checkpoint_id = $1",
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
