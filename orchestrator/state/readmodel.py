"""The write side's ``ReadModel`` port, backed by the projection's PostgreSQL tables.

``commands`` may not import ``projections``; this adapter (in the top layer, which may
import both) is what ``ExecutionWriter`` and ``SharedStateWriter`` are wired with. It
reads rows with the projection's own mapping (``projections.readmodel``) and waits for
positions with the projection's offsets (``projections.positions``), so a writer sees
exactly the state the processor committed.
"""

from __future__ import annotations

import asyncpg

from orchestrator.commands import ReadModelTimeout
from orchestrator.events import (
    BrokenChain,
    CheckpointSaved,
    EventCodec,
    ExecutionState,
    NamespaceState,
    Position,
    default_codec,
)
from orchestrator.projections import (
    CheckpointRow,
    ProjectionSettings,
    ReadModelQueries,
    applied_offset,
    checkpoint_chains,
    wait_for_position,
)

__all__ = ["CheckpointRow", "PostgresReadModel"]


class PostgresReadModel:
    """Reads of one projection's tables through ``pool``.

    Besides the write side's port it answers the queries of ``orchestrator.state``
    (``list_checkpoints``, ``find_checkpoint``, ``checkpoint_chain``), which the memory
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
        self.queries = ReadModelQueries(pool, self.settings)

    async def list_checkpoints(
        self, pipeline_id: str | None, execution_id: str | None
    ) -> list[CheckpointRow]:
        """Checkpoints of a pipeline and/or execution, oldest first."""
        return await self.queries.list_checkpoints(pipeline_id, execution_id)

    async def find_checkpoint(self, checkpoint_id: str) -> CheckpointRow | None:
        return await self.queries.find_checkpoint(checkpoint_id)

    async def checkpoint_chain(
        self, checkpoint_id: str, at: tuple[str, int] | None = None
    ) -> list[CheckpointSaved] | None:
        """The events whose data makes the checkpoint's (``events.checkpointdata``), read
        from the archive: the one copy of checkpoint data; ``None`` if not listed. ``at``:
        the save's (execution_id, sequence) where the caller knows it (a hand-given id may
        be saved by several executions), else the id's newest save."""
        if at is None:
            row = await self.find_checkpoint(checkpoint_id)
            if row is None:
                return None
            at = (row.execution_id, row.sequence)
        chains = await checkpoint_chains(
            self.pool, self.tables, self.codec, at[0], {checkpoint_id: at[1]}
        )
        chain = chains[checkpoint_id]
        if isinstance(chain, BrokenChain):
            raise chain
        return chain

    async def load_execution(self, execution_id: str) -> ExecutionState | None:
        found = await self.queries.execution_entry(execution_id)
        return None if found is None else found[0]

    async def load_execution_entry(
        self, execution_id: str
    ) -> tuple[ExecutionState, Position | None] | None:
        """The execution's state and the position of the last event applied to it."""
        return await self.queries.execution_entry(execution_id)

    async def watermarks(self) -> dict[tuple[str, int], int]:
        """The next offset this projection will apply, per (topic, partition): every event
        before it is readable."""
        return await self.queries.watermarks()

    async def load_namespace(self, namespace: str) -> NamespaceState:
        return await self.queries.namespace(namespace)

    async def wait_for(self, position: Position, timeout: float) -> None:  # noqa: ASYNC109
        if await wait_for_position(self.pool, self.settings.name, position, timeout):
            return
        async with self.pool.acquire() as conn:
            done = await applied_offset(
                conn, self.settings.name, position.topic, position.partition
            )
        raise ReadModelTimeout(position, timeout, applied=done - 1)
