"""``MemoryHistory``: the memory backend's event archive, for restore, replay and traces.

The ``EventArchive`` port (``events.history``) over a ``MemoryReadModel``: an
execution's events in log order with their positions, as the PostgreSQL archive gives
them, so ``checkpoint.restore`` and ``StateDebugger`` read the same history through
the same history service and fold.
"""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.events import ArchivedEvent, MemoryEventArchive
from orchestrator.state.memory import MemoryReadModel


class MemoryHistory(MemoryEventArchive):
    """Reads ``read_model``'s archive (see the module docstring)."""

    def __init__(self, read_model: MemoryReadModel) -> None:
        super().__init__()
        self.read_model = read_model

    def history(self, execution_id: str) -> Sequence[ArchivedEvent]:
        return [
            ArchivedEvent(position, envelope)
            for position, envelope in self.read_model.history(execution_id)
        ]

    async def checkpoint(self, checkpoint_id: str) -> tuple[str, int] | None:
        row = await self.read_model.find_checkpoint(checkpoint_id)
        return None if row is None else (row.execution_id, row.sequence)
