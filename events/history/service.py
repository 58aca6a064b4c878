"""The history service: an execution's events from A to B, and its state at any point.

One component answers both questions every reader of history asks (restore, replay,
diff, trace, fork, the timeline API and page, the debugger, the snapshotter):

* :meth:`History.events`: the execution's events between two log positions, from the
  event archive, falling back to the Kafka log where the archive holds none of them;
* :meth:`History.state`: the state at the latest event, a sequence, a time or a
  checkpoint: the newest usable snapshot at or before the target (through the
  :class:`SnapshotBases` port, ``snapshots.SnapshotBaseReader``) plus the events after
  it, folded with ``events.fold.step``: by construction the full fold's state;
* :meth:`History.steps`: each event to the target with the state before and after it.

Targets, each the state after a prefix of the execution's log: latest (every event);
sequence ``s`` (the longest prefix whose ``last_sequence`` is at most ``s``); time
``t`` (the prefix before the first event, in log order, that occurred after ``t``);
checkpoint ``id`` (the prefix that ends with its ``CheckpointSaved`` event).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from dataclasses import KW_ONLY, dataclass
from datetime import datetime
from typing import Literal, Protocol

from orchestrator.events import tracing
from orchestrator.events.envelope import Envelope, Position
from orchestrator.events.fold import Outcome, step
from orchestrator.events.history.archive import ArchivedEvent, EventArchive
from orchestrator.events.history.errors import (
    LogPartitionUnknown,
    NothingToRestore,
    UnknownCheckpoint,
)
from orchestrator.events.history.logreader import LogReader
from orchestrator.events.state import ExecutionState

Source = Literal["archive", "log"]

_FIRST_PAGE = 128
"""Events read first after a snapshot when the target does not say how many it needs."""


@dataclass(frozen=True, slots=True)
class Target:
    """Where to stop: at most one of ``sequence``, ``time``, ``checkpoint`` (none: latest)."""

    sequence: int | None = None
    time: datetime | None = None
    checkpoint: str | None = None

    def __post_init__(self) -> None:
        given = [v for v in (self.sequence, self.time, self.checkpoint) if v is not None]
        if len(given) > 1:
            raise ValueError("give one of sequence, time, checkpoint")
        if self.sequence is not None and self.sequence < 1:
            raise ValueError(f"sequence {self.sequence} < 1")
        if self.time is not None and self.time.tzinfo is None:
            raise ValueError("time must be timezone-aware")

    def describe(self) -> str:
        if self.sequence is not None:
            return f"sequence {self.sequence}"
        if self.time is not None:
            return f"time {self.time.isoformat()}"
        if self.checkpoint is not None:
            return f"checkpoint {self.checkpoint}"
        return "latest"


@dataclass(frozen=True, slots=True)
class Bound:
    """The end of a prefix: a sequence (inclusive), a log position and time (exclusive)."""

    max_sequence: int | None = None
    before: tuple[int, int] | None = None
    until: datetime | None = None
    through: bool = False
    """Stop right after the event that reaches ``max_sequence`` (a checkpoint's event)."""

    def admits(self, sequence: int, log_order: tuple[int, int]) -> bool:
        """Whether a snapshot at this sequence and position lies within the bound."""
        if self.max_sequence is not None and sequence > self.max_sequence - self.through:
            return False
        return self.before is None or log_order < self.before

    def stops_before(self, event: ArchivedEvent, after: ExecutionState | None) -> bool:
        if self.before is not None and event.log_order >= self.before:
            return True
        if self.until is not None and event.envelope.occurred_at > self.until:
            return True
        return (
            self.max_sequence is not None
            and after is not None
            and after.last_sequence > self.max_sequence
        )

    def reached(self, state: ExecutionState | None) -> bool:
        return self.through and state is not None and state.last_sequence == self.max_sequence

    def describe(self) -> str:
        if self.max_sequence is not None:
            return f"sequence {self.max_sequence}"
        if self.until is not None:
            return f"time {self.until.isoformat()}"
        return "latest" if self.before is None else f"before partition/offset {self.before}"


@dataclass(frozen=True, slots=True)
class Base:
    """Where a fold starts: a decoded snapshot's state, position and object URI."""

    state: ExecutionState
    position: Position
    key: str


class SnapshotBases(Protocol):
    """The newest usable snapshot within a bound (``snapshots.SnapshotBaseReader``)."""

    async def newest(self, execution_id: str, bound: Bound, skipped: list[str]) -> Base | None:
        """The newest snapshot that decodes and lies within ``bound``; the URIs of the
        unusable ones passed over go to ``skipped``."""
        ...


@dataclass(frozen=True, slots=True)
class Restored:
    """A state at a point of history and how it was obtained."""

    state: ExecutionState
    position: Position | None
    """Where the last event folded into ``state`` sits in the log."""
    snapshot_key: str | None
    """The snapshot it started from; ``None`` for a fold from the first event."""
    events_folded: int
    skipped: tuple[str, ...] = ()
    """Snapshot objects that were unusable and passed over (their URIs)."""
    source: Source = "archive"
    last_event: Envelope | None = None
    """The last event folded into ``state`` (``None``: the snapshot alone is the state);
    for a checkpoint target, its ``CheckpointSaved`` event."""


@dataclass(frozen=True, slots=True)
class HistoryStep:
    """One event of the history: the state before and after it, and the fold's verdict."""

    position: Position
    event: Envelope
    outcome: Outcome
    reason: str | None
    before: ExecutionState | None
    after: ExecutionState | None


@dataclass(eq=False)
class History:
    """Reads executions' histories from ``archive`` (or ``log``), starting from the
    snapshots ``snapshots`` finds. Archived events are read ``page_size`` at a time, so
    a state at a sequence reads only as far as the target."""

    archive: EventArchive
    _: KW_ONLY
    snapshots: SnapshotBases | None = None
    log: LogReader | None = None
    page_size: int = 500

    # --- the state at a point ------------------------------------------------------------

    async def latest(self, execution_id: str) -> Restored:
        """The state after every archived event."""
        return await self.state(execution_id)

    async def at_sequence(self, execution_id: str, sequence: int) -> Restored:
        """The state of the longest prefix whose ``last_sequence`` is at most ``sequence``."""
        return await self.state(execution_id, Target(sequence=sequence))

    async def at_time(self, execution_id: str, when: datetime) -> Restored:
        """The state before the first event that occurred after ``when``."""
        if when.tzinfo is None:
            raise ValueError("at_time needs a timezone-aware datetime")
        return await self.state(execution_id, Target(time=when))

    async def at_checkpoint(self, checkpoint_id: str) -> Restored:
        """The state right after the checkpoint was saved."""
        found = await self.archive.checkpoint(checkpoint_id)
        if found is None:
            raise UnknownCheckpoint(None, checkpoint_id)
        return await self.state(found[0], Target(checkpoint=checkpoint_id))

    async def before_position(self, execution_id: str, partition: int, offset: int) -> Restored:
        """The state after every event before ``offset`` of ``partition`` (the snapshotter
        rebuilds an execution this way when its own snapshot cannot serve)."""
        return await self._restore(execution_id, Bound(before=(partition, offset)), "archive")

    async def state(
        self, execution_id: str, target: Target | None = None, *, source: Source = "archive"
    ) -> Restored:
        """The execution's state at ``target`` (default: latest)."""
        bound = await self.bound(execution_id, target or Target())
        return await self._restore(execution_id, bound, source)

    async def bound(self, execution_id: str, target: Target) -> Bound:
        """The prefix ``target`` names (a checkpoint or a time is looked up in the archive)."""
        if target.checkpoint is not None:
            found = await self.archive.checkpoint(target.checkpoint, execution_id)
            if found is None or found[0] != execution_id:
                raise UnknownCheckpoint(execution_id, target.checkpoint)
            return Bound(max_sequence=found[1], through=True)
        if target.sequence is not None:
            return Bound(max_sequence=target.sequence)
        if target.time is not None:
            before = await self.archive.first_after(execution_id, target.time)
            return Bound(before=before, until=target.time)
        return Bound()

    async def _restore(self, execution_id: str, bound: Bound, source: Source) -> Restored:
        with tracing.span("orchestrator.restore", execution_id=execution_id) as span:
            skipped: list[str] = []
            base = await self._base(execution_id, bound, skipped)
            state = None if base is None else base.state
            position = None if base is None else base.position
            folded, last = 0, None
            if not bound.reached(state):
                first = _first_page(bound, state, self.page_size)
                events = self.events(
                    execution_id, after=position, bound=bound, source=source, first_page=first
                )
                async with contextlib.aclosing(events) as stream:
                    async for item in stream:
                        nxt: ExecutionState | None = step(state, item.envelope).state
                        if bound.stops_before(item, nxt):
                            break
                        state, position, folded = nxt, item.position, folded + 1
                        last = item.envelope
                        if bound.reached(state):
                            break
            if state is None:
                raise NothingToRestore(execution_id, bound.describe())
            if span is not None:
                span.set_attribute("sequence", state.last_sequence)
                span.set_attribute("events_folded", folded)
            key = None if base is None else base.key
            return Restored(state, position, key, folded, tuple(skipped), source, last)

    async def _base(self, execution_id: str, bound: Bound, skipped: list[str]) -> Base | None:
        if self.snapshots is None:
            return None
        return await self.snapshots.newest(execution_id, bound, skipped)

    # --- every step to a point ---------------------------------------------------------

    async def steps(
        self,
        execution_id: str,
        target: Target | None = None,
        *,
        source: Source = "archive",
        start_sequence: int | None = None,
        start_time: datetime | None = None,
    ) -> AsyncGenerator[HistoryStep, None]:
        """Each event up to ``target`` with the state before and after it, streamed; with
        ``start_sequence`` (``start_time``) only the events after the state at that
        sequence (time), which are folded silently from the snapshot before them."""
        bound = await self.bound(execution_id, target or Target())
        emitting = start_sequence is None and start_time is None
        base = None
        if start_sequence is not None and start_sequence >= 1:
            top = start_sequence if bound.max_sequence is None else bound.max_sequence
            base = await self._base(execution_id, Bound(max_sequence=min(start_sequence, top)), [])
        elif start_time is not None:
            before = await self.archive.first_after(execution_id, start_time)
            start = bound if before is None else Bound(before=before)
            base = await self._base(execution_id, start, [])
        state = None if base is None else base.state
        seen = base is not None
        after = None if base is None else base.position
        events = self.events(execution_id, after=after, bound=bound, source=source)
        async with contextlib.aclosing(events) as stream:
            async for item in stream:
                result = step(state, item.envelope)
                nxt: ExecutionState | None = result.state
                if bound.stops_before(item, nxt):
                    break
                seen = True
                if not emitting:
                    if start_time is not None:
                        emitting = item.envelope.occurred_at > start_time
                    elif nxt is not None and start_sequence is not None:
                        emitting = nxt.last_sequence > start_sequence
                if emitting:
                    yield HistoryStep(
                        item.position, item.envelope, result.outcome, result.reason, state, nxt
                    )
                state = nxt
                if bound.reached(state):
                    break
        if not seen:
            raise NothingToRestore(execution_id, bound.describe())

    # --- the events from A to B --------------------------------------------------------

    async def events(
        self,
        execution_id: str,
        *,
        after: Position | None = None,
        bound: Bound | None = None,
        source: Source = "archive",
        first_page: int | None = None,
    ) -> AsyncGenerator[ArchivedEvent, None]:
        """The execution's events after ``after`` up to ``bound``'s position, in log order:
        from the archive, or from the log when asked, or when the archive holds none of
        the execution's events and a log reader is configured. Pages start at
        ``first_page`` events (what the caller expects to need) and grow to ``page_size``,
        so a fold that stops early decodes little past its target."""
        before = None if bound is None else bound.before
        if source == "archive":
            cursor = None if after is None else (after.partition, after.offset)
            size = min(first_page or _FIRST_PAGE, self.page_size)
            while True:
                page = await self.archive.events(
                    execution_id, after=cursor, before=before, limit=size
                )
                for event in page:
                    yield event
                if len(page) < size:
                    break
                cursor = page[-1].log_order
                size = min(size * 4, self.page_size)
            if cursor is not None or page or self.log is None:
                return
        async for event in self._from_log(execution_id, after, before):
            yield event

    async def _from_log(
        self, execution_id: str, after: Position | None, before: tuple[int, int] | None
    ) -> AsyncGenerator[ArchivedEvent, None]:
        if self.log is None:
            raise ValueError("reading the log needs a LogReader (bootstrap servers)")
        if after is not None:
            topic, partition, offset = after.topic, after.partition, after.offset
        else:
            (topic, partition), offset = await self._partition(execution_id), None
        stream = self.log.stream(execution_id, partition, after_offset=offset, topic=topic)
        async with contextlib.aclosing(stream) as records:  # type: ignore[type-var]
            async for event in records:
                if before is not None and event.log_order >= before:
                    return
                yield event

    async def _partition(self, execution_id: str) -> tuple[str, int]:
        """Where the archive saw the execution, else where the producer's partitioner
        puts its key on the reader's topic."""
        assert self.log is not None
        located = await self.archive.locate(execution_id)
        if located is not None:
            return located.topic, located.partition
        try:
            return self.log.topic, await self.log.partition_of(execution_id)
        except (KeyError, ZeroDivisionError) as exc:
            raise LogPartitionUnknown(execution_id, self.log.topic) from exc


def _first_page(bound: Bound, base: ExecutionState | None, page_size: int) -> int:
    """Events the first page reads: a sequence target after a snapshot needs about the
    sequences between them (plus control events); anything else a default page."""
    if bound.max_sequence is None or base is None:
        return _FIRST_PAGE if base is not None else page_size
    return max(16, min(page_size, bound.max_sequence - base.last_sequence + 8))
