"""The event archive port: every event of every execution, as the log delivered it.

:class:`EventArchive` is the one port through which the history service reads an
execution's events from a copy of the log; ``PostgresEventArchive`` (the projection's
``execution_events`` table) and :class:`MemoryEventArchive` (lists, for tests, benches
and the memory backend) are its adapters.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from orchestrator.events.envelope import Envelope, Position
from orchestrator.events.fold import Outcome, step
from orchestrator.events.state import ExecutionState


@dataclass(frozen=True, slots=True)
class ArchivedEvent:
    """One event of an execution's history and where the log holds it."""

    position: Position
    envelope: Envelope

    @property
    def log_order(self) -> tuple[int, int]:
        return (self.position.partition, self.position.offset)


@dataclass(frozen=True, slots=True)
class Located:
    """Where an execution's events sit, as the archive knows it."""

    topic: str
    partition: int
    events: int
    last_sequence: int | None


FIRST: tuple[int, int] = (-1, -1)
"""A (partition, offset) before every event."""
LAST: tuple[int, int] = (2**31 - 1, 2**63 - 1)
"""A (partition, offset) after every event (PostgreSQL's int and bigint maxima)."""


class EventArchive:
    """Every event of every execution, as the log delivered it.

    An adapter reads a bounded :meth:`page`; :meth:`events` (what the history service
    calls) fills in open bounds and counts ``rows_read``, as tests use it to prove a
    replay reads one page ahead of what it folded, never the rest.
    """

    rows_read: int = 0

    async def events(
        self,
        execution_id: str,
        *,
        after: tuple[int, int] | None = None,
        before: tuple[int, int] | None = None,
        limit: int | None = None,
    ) -> Sequence[ArchivedEvent]:
        """The execution's events strictly between ``after`` and ``before`` (partition,
        offset), in log order; the first ``limit`` of them."""
        page = await self.page(execution_id, after or FIRST, before or LAST, limit)
        self.rows_read += len(page)
        return page

    async def page(
        self, execution_id: str, after: tuple[int, int], before: tuple[int, int], limit: int | None
    ) -> Sequence[ArchivedEvent]:
        """What :meth:`events` returns, with both bounds given."""
        raise NotImplementedError

    async def first_after(self, execution_id: str, when: datetime) -> tuple[int, int] | None:
        """(partition, offset) of the execution's first event that occurred after ``when``."""
        raise NotImplementedError

    async def checkpoint(
        self, checkpoint_id: str, execution_id: str | None = None
    ) -> tuple[str, int] | None:
        """(execution_id, sequence) of the newest save of this checkpoint id (of
        ``execution_id`` when given: hand-given ids may be saved by several), if any."""
        raise NotImplementedError

    async def locate(self, execution_id: str) -> Located | None:
        """Where the execution's events are, if the archive holds any."""
        raise NotImplementedError

    async def applied_events(
        self, execution_id: str, event_types: Sequence[str], max_sequence: int
    ) -> list[ArchivedEvent]:
        """Applied events of these types up to ``max_sequence``, in log order."""
        raise NotImplementedError


class MemoryEventArchive(EventArchive):
    """The archive as lists in memory: for tests, benchmarks and the memory backend.

    Every read goes through :meth:`history` (one execution's events in log order), which
    an adapter over another in-memory history overrides. ``rows_read`` counts the
    events handed out, as the PostgreSQL adapter counts rows.
    """

    def __init__(self, events: Iterable[ArchivedEvent] = ()) -> None:
        self._events: dict[str, list[ArchivedEvent]] = {}
        self.extend(events)

    def extend(self, events: Iterable[ArchivedEvent]) -> None:
        """Add events (any order; each execution's list is kept in log order)."""
        touched = set()
        for event in events:
            key = event.envelope.execution_id or ""
            self._events.setdefault(key, []).append(event)
            touched.add(key)
        for key in touched:
            self._events[key].sort(key=lambda e: e.log_order)

    def history(self, execution_id: str) -> Sequence[ArchivedEvent]:
        """The execution's events in log order."""
        return self._events.get(execution_id, [])

    async def page(
        self, execution_id: str, after: tuple[int, int], before: tuple[int, int], limit: int | None
    ) -> Sequence[ArchivedEvent]:
        mine = self.history(execution_id)
        start = bisect.bisect_right(mine, after, key=_log_order)
        end = bisect.bisect_left(mine, before, key=_log_order)
        return mine[start : end if limit is None else min(end, start + limit)]

    async def first_after(self, execution_id: str, when: datetime) -> tuple[int, int] | None:
        for event in self.history(execution_id):
            if event.envelope.occurred_at > when:
                return event.log_order
        return None

    async def checkpoint(
        self, checkpoint_id: str, execution_id: str | None = None
    ) -> tuple[str, int] | None:
        saves = [
            (envelope.occurred_at, envelope.sequence, eid)
            for eid in self._events
            if execution_id is None or eid == execution_id
            for event in self.history(eid)
            if (envelope := event.envelope).event_type == "CheckpointSaved"
            and getattr(envelope.payload, "checkpoint_id", None) == checkpoint_id
            and envelope.sequence is not None
        ]
        if not saves:
            return None
        _, sequence, eid = max(saves)
        return eid, sequence

    async def locate(self, execution_id: str) -> Located | None:
        events = self.history(execution_id)
        if not events:
            return None
        sequences = [e.envelope.sequence for e in events if e.envelope.sequence is not None]
        first = events[0].position
        return Located(first.topic, first.partition, len(events), max(sequences, default=None))

    async def applied_events(
        self, execution_id: str, event_types: Sequence[str], max_sequence: int
    ) -> list[ArchivedEvent]:
        wanted, out = frozenset(event_types), []
        state: ExecutionState | None = None
        for event in self.history(execution_id):
            result = step(state, event.envelope)
            if result.state is not None:
                state = result.state
            envelope = event.envelope
            if (
                result.outcome is Outcome.APPLIED
                and envelope.event_type in wanted
                and (envelope.sequence or 0) <= max_sequence
            ):
                out.append(event)
        return out


def _log_order(event: ArchivedEvent) -> tuple[int, int]:
    return event.log_order
