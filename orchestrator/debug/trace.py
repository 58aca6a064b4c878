"""The seed's ``trace_state_changes``: each event since a time, with what it changed.

A trace starts from the state the execution had at ``from_time`` (restored from the
snapshot before it) and lists every later event in log order with the fold's verdict
and the changed fields, so "why is this task still pending?" has an answer that
names the event.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orchestrator.debug.diff import Change
from orchestrator.debug.replay import ReplayStep
from orchestrator.events import ExecutionState, Position, field_values, from_fields
from orchestrator.projections import payload_json


@dataclass(frozen=True, slots=True)
class TraceEntry:
    """One event of a trace and the state changes it made."""

    position: Position
    sequence: int | None
    epoch: int
    event_type: str
    occurred_at: datetime
    producer: str
    outcome: str
    reason: str | None
    payload: dict[str, Any]
    changes: tuple[Change, ...]

    @classmethod
    def of(cls, item: ReplayStep) -> TraceEntry:
        """The step's event (sequence, epoch, type, time, producer) and its verdict."""
        return from_fields(
            cls,
            item.event,
            position=item.position,
            outcome=item.outcome.value,
            reason=item.reason,
            payload=payload_json(item.event),
            changes=tuple(item.changes()),
        )

    def as_json(self) -> dict[str, Any]:
        """The entry as one JSON object (``--json`` prints one per line)."""
        return {
            **field_values(self),
            "position": self.position.token(),
            "occurred_at": self.occurred_at.isoformat(),
            "changes": [c.as_json() for c in self.changes],
        }


@dataclass(frozen=True, slots=True)
class StateTrace:
    """The events of ``execution_id`` after ``from_time`` (up to ``to_time``), with the
    state at ``from_time`` (``None`` if the execution did not exist yet) and after."""

    execution_id: str
    from_time: datetime
    to_time: datetime | None
    initial: ExecutionState | None
    final: ExecutionState | None
    entries: tuple[TraceEntry, ...]
    truncated: bool = False
    """More events followed than ``limit`` allowed."""


async def trace_entries(
    steps: AsyncGenerator[ReplayStep, None],
) -> AsyncGenerator[TraceEntry, None]:
    """Each step as a :class:`TraceEntry`, streamed."""
    async with contextlib.aclosing(steps) as stream:
        async for item in stream:
            yield TraceEntry.of(item)
