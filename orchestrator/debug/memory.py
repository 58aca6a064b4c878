"""``MemoryHistory``: the memory backend's event history, for replay and traces.

The ``EventHistory`` port (``debug.sources``) over a ``MemoryReadModel``: an
execution's events in log order with their positions, as the PostgreSQL archive
(``ArchiveReader``) gives them, so ``StateDebugger.replay``, ``replay_steps`` and
``trace_state_changes`` fold the same history with the same fold.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Sequence
from datetime import datetime

from orchestrator.debug.sources import Located
from orchestrator.events import Outcome, step
from orchestrator.events.state import ExecutionState
from orchestrator.snapshots.restore import ArchivedEvent
from orchestrator.state.memory import MemoryReadModel


class MemoryHistory:
    """Reads ``read_model``'s archive (see the module docstring)."""

    def __init__(self, read_model: MemoryReadModel) -> None:
        self.read_model = read_model

    async def stream(
        self, execution_id: str, *, after: tuple[int, int] | None = None
    ) -> AsyncGenerator[ArchivedEvent, None]:
        """The execution's events after ``after`` (partition, offset), in log order."""
        cursor = after or (-1, -1)
        for position, envelope in self.read_model.history(execution_id):
            if (position.partition, position.offset) > cursor:
                yield ArchivedEvent(position, envelope)

    async def locate(self, execution_id: str) -> Located | None:
        events = self.read_model.history(execution_id)
        if not events:
            return None
        sequences = [e.sequence for _, e in events if e.sequence is not None]
        first = events[0][0]
        return Located(first.topic, first.partition, len(events), max(sequences, default=None))

    async def first_after(self, execution_id: str, when: datetime) -> tuple[int, int] | None:
        for position, envelope in self.read_model.history(execution_id):
            if envelope.occurred_at > when:
                return position.partition, position.offset
        return None

    async def checkpoint(self, checkpoint_id: str) -> tuple[str, int] | None:
        row = await self.read_model.find_checkpoint(checkpoint_id)
        return None if row is None else (row.execution_id, row.sequence)

    async def applied_events(
        self, execution_id: str, event_types: Sequence[str], max_sequence: int
    ) -> list[ArchivedEvent]:
        """Applied events of these types up to ``max_sequence`` (what a fork copies)."""
        wanted, out = frozenset(event_types), []
        state: ExecutionState | None = None
        for position, envelope in self.read_model.history(execution_id):
            result = step(state, envelope)
            if result.state is not None:
                state = result.state
            if (
                result.outcome is Outcome.APPLIED
                and envelope.event_type in wanted
                and (envelope.sequence or 0) <= max_sequence
            ):
                out.append(ArchivedEvent(position, envelope))
        return out
