"""Replay: an execution's state at any point of its history, or every step to it.

The state at a target is the newest usable snapshot at or before it plus the events
after it, folded with ``events.fold.step`` (design §5: always equal to the full fold).
Events stream one at a time from the archive or from the log (``sources``); nothing
holds the whole history. Targets are the ones ``snapshots.Restorer`` knows:

* latest: every event the source holds;
* ``sequence=s``: the longest prefix whose ``last_sequence`` is at most ``s``;
* ``time=t``: the prefix before the first event (log order) that occurred after ``t``;
* ``checkpoint=id``: the sequence of the ``CheckpointSaved`` event with that id.

:meth:`Replayer.steps` yields, for each event, the state before and after it and
the fold's verdict; ``start_sequence`` skips (silently folds) the events up to that
sequence, starting from the snapshot before it, so ``--diff --last 1000`` of a
100,000-event execution reads ~1,100 events, not 100,000.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg

from orchestrator.debug.diff import Change, diff
from orchestrator.debug.errors import HistoryNotFound, PartitionUnknown
from orchestrator.debug.sources import EventHistory, LogReader, _EmptyAfterSnapshot
from orchestrator.events.envelope import Envelope, Position
from orchestrator.events.fold import Outcome, step
from orchestrator.events.state import ExecutionState
from orchestrator.snapshots import (
    ArchivedEvent,
    NothingToRestore,
    Restored,
    Restorer,
    SnapshotCodec,
    SnapshotIndex,
    SnapshotStore,
    open_store,
)
from orchestrator.state.errors import CheckpointNotFound

logger = logging.getLogger(__name__)

Source = Literal["archive", "log"]


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
class ReplayStep:
    """One event of the history: the state before and after it, and the fold's verdict."""

    position: Position
    event: Envelope
    outcome: Outcome
    reason: str | None
    before: ExecutionState | None
    after: ExecutionState | None

    def changes(self) -> Iterator[Change]:
        """What the event changed (nothing, for a duplicate or a zombie write)."""
        return diff(self.before, self.after)


@dataclass(frozen=True, slots=True)
class Replayed:
    """A replayed state and how it was obtained."""

    execution_id: str
    state: ExecutionState
    position: Position | None
    """Where the last event folded into ``state`` sits in the log."""
    snapshot_key: str | None
    """The snapshot it started from (``None``: from the first event)."""
    events_folded: int
    source: Source
    target: Target


@dataclass(frozen=True, slots=True)
class _Bound:
    max_sequence: int | None = None
    until: datetime | None = None

    def stops_before(self, event: Envelope, after: ExecutionState | None) -> bool:
        if self.until is not None and event.occurred_at > self.until:
            return True
        return (
            self.max_sequence is not None
            and after is not None
            and after.last_sequence > self.max_sequence
        )


class SnapshotSource:
    """The newest usable snapshot at or before a target (``snapshots.Restorer`` picks and
    verifies it). The store is ``store``, else the one the index rows name."""

    def __init__(
        self,
        index: SnapshotIndex,
        codec: SnapshotCodec | None = None,
        store: SnapshotStore | None = None,
        *,
        s3_endpoint_url: str | None = None,
    ) -> None:
        self.index = index
        self.codec = codec or SnapshotCodec()
        self.store = store
        self.s3_endpoint_url = s3_endpoint_url
        self._stores: dict[str, SnapshotStore] = {}

    def _store_named(self, name: str) -> SnapshotStore:
        store = self._stores.get(name)
        if store is None:
            endpoint = self.s3_endpoint_url if name.startswith("s3://") else None
            store = self._stores[name] = open_store(name, endpoint_url=endpoint)
        return store

    async def base(
        self,
        archive: EventHistory,
        execution_id: str,
        *,
        max_sequence: int | None = None,
        before: tuple[int, int] | None = None,
    ) -> Restored | None:
        """The snapshot's state (no events folded on it), or ``None`` if none serves."""
        store = self.store
        if store is None:  # the store the newest row names
            try:
                newest = await self.index.candidates(
                    execution_id, max_sequence=max_sequence, limit=1
                )
            except asyncpg.UndefinedTableError:
                logger.warning("no snapshots table in this database: replaying from the start")
                return None
            if not newest:
                return None
            store = self._store_named(newest[0].store)
        restorer = Restorer(
            store=store, index=self.index, archive=_EmptyAfterSnapshot(archive), codec=self.codec
        )
        try:
            if before is not None:
                return await restorer.before_position(execution_id, *before)
            if max_sequence is not None:
                return await restorer.at_sequence(execution_id, max_sequence)
            return await restorer.latest(execution_id)
        except NothingToRestore:
            return None


class Replayer:
    """Replays executions from ``archive`` (or ``log``), starting from ``snapshots``."""

    def __init__(
        self,
        archive: EventHistory,
        *,
        log: LogReader | None = None,
        snapshots: SnapshotSource | None = None,
    ) -> None:
        self.archive = archive
        self.log = log
        self.snapshots = snapshots

    async def state(
        self, execution_id: str, target: Target | None = None, *, source: Source = "archive"
    ) -> Replayed:
        """The execution's state at ``target`` (default: latest)."""
        target = target or Target()
        bound, base = await self._prepare(execution_id, target, None)
        state = None if base is None else base.state
        position = None if base is None else base.position
        folded = 0
        events = self._events(execution_id, base, source)
        async with contextlib.aclosing(events) as stream:
            async for item in stream:
                after: ExecutionState | None = step(state, item.envelope).state
                if bound.stops_before(item.envelope, after):
                    break
                state, position, folded = after, item.position, folded + 1
        if state is None:
            raise HistoryNotFound(execution_id, _describe(source))
        return Replayed(
            execution_id,
            state,
            position,
            None if base is None else base.snapshot_key,
            folded,
            source,
            target,
        )

    async def steps(
        self,
        execution_id: str,
        target: Target | None = None,
        *,
        source: Source = "archive",
        start_sequence: int | None = None,
        start_time: datetime | None = None,
    ) -> AsyncGenerator[ReplayStep, None]:
        """Each event up to ``target`` with the state before and after it, streamed; with
        ``start_sequence`` (``start_time``) only the events after the state at that
        sequence (time), which are folded silently from the snapshot before them."""
        target = target or Target()
        emitting = start_sequence is None and start_time is None
        # Every event from the first one, unless a start lets a snapshot stand in for them.
        first = 0 if emitting else start_sequence
        bound, base = await self._prepare(execution_id, target, first, start_time)
        state = None if base is None else base.state
        seen = base is not None
        events = self._events(execution_id, base, source)
        async with contextlib.aclosing(events) as stream:
            async for item in stream:
                result = step(state, item.envelope)
                after: ExecutionState | None = result.state
                if bound.stops_before(item.envelope, after):
                    break
                seen = True
                if not emitting:
                    if start_time is not None:
                        emitting = item.envelope.occurred_at > start_time
                    elif after is not None and start_sequence is not None:
                        emitting = after.last_sequence > start_sequence
                if emitting:
                    yield ReplayStep(
                        item.position, item.envelope, result.outcome, result.reason, state, after
                    )
                state = after
        if not seen:
            raise HistoryNotFound(execution_id, _describe(source))

    async def _prepare(
        self,
        execution_id: str,
        target: Target,
        start_sequence: int | None = None,
        start_time: datetime | None = None,
    ) -> tuple[_Bound, Restored | None]:
        bound = _Bound()
        before: tuple[int, int] | None = None
        if target.checkpoint is not None:
            found = await self.archive.checkpoint(target.checkpoint)
            if found is None or found[0] != execution_id:
                raise CheckpointNotFound(target.checkpoint)
            bound = _Bound(max_sequence=found[1])
        elif target.sequence is not None:
            bound = _Bound(max_sequence=target.sequence)
        elif target.time is not None:
            bound = _Bound(until=target.time)
            before = await self.archive.first_after(execution_id, target.time)
        if self.snapshots is None or (start_sequence is not None and start_sequence < 1):
            return bound, None
        max_sequence = bound.max_sequence
        if start_sequence is not None:
            max_sequence = min(start_sequence, max_sequence or start_sequence)
            before = None
        elif start_time is not None:
            max_sequence = None
            before = await self.archive.first_after(execution_id, start_time)
            if before is None:  # nothing after start_time: the latest snapshot serves
                max_sequence = bound.max_sequence
        base = await self.snapshots.base(
            self.archive, execution_id, max_sequence=max_sequence, before=before
        )
        return bound, base

    async def _events(
        self, execution_id: str, base: Restored | None, source: Source
    ) -> AsyncGenerator[ArchivedEvent, None]:
        at = None if base is None else base.position
        if source == "archive":
            after = None if at is None else (at.partition, at.offset)
            async for event in self.archive.stream(execution_id, after=after):
                yield event
            return
        if self.log is None:
            raise ValueError("replay from the log needs a LogReader (bootstrap servers)")
        if at is not None:
            topic, partition, offset = at.topic, at.partition, at.offset
        else:
            (topic, partition), offset = await self._partition(execution_id), None
        stream = self.log.stream(execution_id, partition, after_offset=offset, topic=topic)
        async for event in stream:
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
            raise PartitionUnknown(execution_id, self.log.topic) from exc

    async def last_sequence(self, execution_id: str, target: Target | None = None) -> int:
        """The last sequence of the state at ``target`` (what ``--last N`` counts back from)."""
        return (await self.state(execution_id, target)).state.last_sequence


def _describe(source: Source) -> str:
    return "event archive (execution_events)" if source == "archive" else "log"
