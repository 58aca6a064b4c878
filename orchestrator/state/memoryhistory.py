"""``MemoryHistory``: the memory backend's event archive, for replay and traces.

The ``EventArchive`` port (``events.history``) over a ``MemoryReadModel``: an
execution's events in log order with their positions, as the PostgreSQL archive gives
them, so ``StateDebugger.replay``, ``replay_steps`` and ``trace_state_changes`` read
the same history through the same history service and fold.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from orchestrator.events import ArchivedEvent, Located, MemoryEventArchive
from orchestrator.state.memory import MemoryReadModel


class MemoryHistory:
    """Reads ``read_model``'s archive (see the module docstring)."""

    def __init__(self, read_model: MemoryReadModel) -> None:
        self.read_model = read_model

    def _of(self, execution_id: str) -> MemoryEventArchive:
        return MemoryEventArchive(
            ArchivedEvent(position, envelope)
            for position, envelope in self.read_model.history(execution_id)
        )

    async def events(
        self,
        execution_id: str,
        *,
        after: tuple[int, int] | None = None,
        before: tuple[int, int] | None = None,
        limit: int | None = None,
    ) -> Sequence[ArchivedEvent]:
        return await self._of(execution_id).events(
            execution_id, after=after, before=before, limit=limit
        )

    async def locate(self, execution_id: str) -> Located | None:
        return await self._of(execution_id).locate(execution_id)

    async def first_after(self, execution_id: str, when: datetime) -> tuple[int, int] | None:
        return await self._of(execution_id).first_after(execution_id, when)

    async def checkpoint(self, checkpoint_id: str) -> tuple[str, int] | None:
        row = await self.read_model.find_checkpoint(checkpoint_id)
        return None if row is None else (row.execution_id, row.sequence)

    async def applied_events(
        self, execution_id: str, event_types: Sequence[str], max_sequence: int
    ) -> list[ArchivedEvent]:
        """Applied events of these types up to ``max_sequence`` (what a fork copies)."""
        return await self._of(execution_id).applied_events(execution_id, event_types, max_sequence)
