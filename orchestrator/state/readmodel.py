"""The write side's ``ReadModel`` port, backed by the projection's PostgreSQL tables.

``commands`` may not import ``projections``; this adapter (in the top layer, which may
import both) is what ``ExecutionWriter`` and ``SharedStateWriter`` are wired with. It
reads rows with the projection's own mapping (``projections.readmodel``) and waits for
positions with the projection's offsets (``projections.positions``), so a writer sees
exactly the state the processor committed.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import Any

import asyncpg

from orchestrator.commands.ports import ReadModelTimeout
from orchestrator.events.codec import EventCodec, default_codec
from orchestrator.events.envelope import Position
from orchestrator.events.state import ExecutionState, NamespaceState
from orchestrator.projections import readmodel as rm
from orchestrator.projections.positions import applied_offset, wait_for_position
from orchestrator.projections.settings import ProjectionSettings
from orchestrator.projections.store import ReadModelStore


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
    created_at: dt.datetime
    metadata: Any


def _checkpoint_row(r: asyncpg.Record) -> CheckpointRow:
    return CheckpointRow(
        id=r["checkpoint_id"],
        name=r["name"],
        pipeline_id=r["pipeline_id"],
        execution_id=r["execution_id"],
        task_id=r["task_id"],
        sequence=r["sequence"],
        progress=r["progress"],
        created_at=r["created_at"],
        metadata=None if r["metadata"] is None else json.loads(r["metadata"]),
    )


_CHECKPOINT_COLUMNS = (
    "checkpoint_id, name, pipeline_id, execution_id, task_id, sequence, progress,"
    " created_at, metadata"
)


class PostgresReadModel:
    """Reads of one projection's tables through ``pool``.

    Besides the write side's port it answers the queries of ``orchestrator.state``
    (``list_checkpoints``, ``find_checkpoint``, ``checkpoint_data``), which the memory
    backend's ``MemoryReadModel`` answers too."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: ProjectionSettings | None = None,
        codec: EventCodec | None = None,
    ) -> None:
        self.pool = pool
        self.settings = settings or ProjectionSettings()
        self.tables = self.settings.tables
        self.codec = codec or default_codec()
        self._store = ReadModelStore(self.settings)

    async def list_checkpoints(
        self, pipeline_id: str | None, execution_id: str | None
    ) -> list[CheckpointRow]:
        """Checkpoints of a pipeline and/or execution, oldest first."""
        order = "sequence" if execution_id is not None else "created_at, execution_id, sequence"
        rows = await self.pool.fetch(
            f"SELECT {_CHECKPOINT_COLUMNS} FROM {self.tables.checkpoints}"
            " WHERE ($1::text IS NULL OR pipeline_id = $1)"
            " AND ($2::text IS NULL OR execution_id = $2)"
            f" ORDER BY {order}",
            pipeline_id,
            execution_id,
        )
        return [_checkpoint_row(r) for r in rows]

    async def find_checkpoint(self, checkpoint_id: str) -> CheckpointRow | None:
        row = await self.pool.fetchrow(
            f"SELECT {_CHECKPOINT_COLUMNS} FROM {self.tables.checkpoints} WHERE checkpoint_id = $1",
            checkpoint_id,
        )
        return None if row is None else _checkpoint_row(row)

    async def checkpoint_data(self, checkpoint_id: str) -> Any:
        """The checkpoint's data as JSON (a claim-checked value as its ``$blob`` marker)."""
        raw = await self.pool.fetchval(
            f"SELECT data FROM {self.tables.checkpoints} WHERE checkpoint_id = $1",
            checkpoint_id,
        )
        return None if raw is None else json.loads(raw)

    async def load_execution(self, execution_id: str) -> ExecutionState | None:
        async with self.pool.acquire() as conn:
            found = await self._store.load_executions(conn, [execution_id])
        entry = found.get(execution_id)
        return None if entry is None else entry.state

    async def load_execution_entry(
        self, execution_id: str
    ) -> tuple[ExecutionState, Position | None] | None:
        """The execution's state and the position of the last event applied to it."""
        async with self.pool.acquire() as conn:
            found = await self._store.load_executions(conn, [execution_id])
        entry = found.get(execution_id)
        if entry is None:
            return None
        last = entry.last_position
        return entry.state, None if last is None else Position(*last)

    async def watermarks(self) -> dict[tuple[str, int], int]:
        """The next offset this projection will apply, per (topic, partition): every event
        before it is readable."""
        rows = await self.pool.fetch(
            "SELECT topic, partition, next_offset FROM projection_offsets WHERE projection = $1",
            self.settings.name,
        )
        return {(r["topic"], r["partition"]): int(r["next_offset"]) for r in rows}

    async def load_namespace(self, namespace: str) -> NamespaceState:
        rows = await self.pool.fetch(
            f"SELECT * FROM {self.tables.shared_variables} WHERE namespace = $1 ORDER BY name",
            namespace,
        )
        variables = {r["name"]: rm.shared_variable_from_row(r) for r in rows}
        return NamespaceState(namespace=namespace, variables=variables)

    async def wait_for(self, position: Position, timeout: float) -> None:  # noqa: ASYNC109
        if await wait_for_position(self.pool, self.settings.name, position, timeout):
            return
        async with self.pool.acquire() as conn:
            done = await applied_offset(
                conn, self.settings.name, position.topic, position.partition
            )
        raise ReadModelTimeout(position, timeout, applied=done - 1)

    async def fetch(self, sql: str, *args: Any) -> list[asyncpg.Record]:
        """Rows of a query on this projection's tables (``{table}`` names substituted)."""
        names = dict(self.tables.items())
        rows: list[asyncpg.Record] = await self.pool.fetch(sql.format(**names), *args)
        return rows
