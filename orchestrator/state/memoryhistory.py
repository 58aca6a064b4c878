"""``MemoryHistory``: the memory backend's event archive, for restore, replay and traces.

The ``EventArchive`` port (``events.history``) over a ``MemoryReadModel``: an
execution's events in log order with their positions, as the PostgreSQL archive gives
them, so ``checkpoint.restore`` and ``StateDebugger`` read the same history through
the same history service and fold.
"""

from __future__ import annotations

from collections.abc import Sequence

from orchestrator.events import ArchivedEvent, CheckpointSaved, MemoryEventArchive
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

    async def checkpoint(
        self, checkpoint_id: str, execution_id: str | None = None
    ) -> tuple[str, int] | None:
        row = await self.read_model.find_checkpoint(checkpoint_id)
        if row is not None and execution_id in (None, row.execution_id):
            return row.execution_id, row.sequence
        if execution_id is None:
            return None
        # A hand-given id another execution saved later: this execution's newest save.
        saves = [
            e.sequence
            for _, e in self.read_model.history(execution_id)
            if isinstance(e.payload, CheckpointSaved)
            and e.payload.checkpoint_id == checkpoint_id
            and e.sequence is not None
        ]
        return (execution_id, max(saves)) if saves else None
