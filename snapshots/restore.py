"""Restore: an execution's state at its latest event, a sequence, a time or a checkpoint.

The newest usable snapshot at or before the target, plus the archived events after it
(ordered by partition and offset), folded with ``events.fold.step``: by construction
the same state as folding the whole archive from the first event. A snapshot that
does not decode (unknown schema, failed auth tag, bad checksum, truncation, missing
object) is skipped with a WARNING naming the object, for an older one or a replay
from the first event; a damaged snapshot costs time, never a wrong state.

Targets, each the state after a prefix of the execution's log:

* latest: every archived event (or a newer snapshot, if the archive lags behind it);
* sequence ``s``: the longest prefix whose ``last_sequence`` is at most ``s``;
* time ``t``: the prefix before the first event that occurred after ``t``;
* checkpoint ``id``: the sequence of the ``CheckpointSaved`` event with that id.

Restore reads through two small ports, :class:`EventArchive` and the
``SnapshotIndex``, so this module does no I/O of its own and is property-tested
without services; ``snapshots.postgres`` adapts both to PostgreSQL.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from orchestrator.events import tracing
from orchestrator.events.envelope import Envelope, Position
from orchestrator.events.fold import step
from orchestrator.events.state import ExecutionState
from orchestrator.snapshots.codec import Snapshot, SnapshotCodec
from orchestrator.snapshots.errors import NothingToRestore, SnapshotCorrupt, SnapshotNotFound
from orchestrator.snapshots.index import SnapshotIndex, SnapshotRecord
from orchestrator.snapshots.store import SnapshotStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ArchivedEvent:
    """One event of an execution's history and where the log holds it."""

    position: Position
    envelope: Envelope

    @property
    def log_order(self) -> tuple[int, int]:
        return (self.position.partition, self.position.offset)


class EventArchive(Protocol):
    """Every event of every execution, as the log delivered it (``execution_events``)."""

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
        ...

    async def first_after(self, execution_id: str, when: datetime) -> tuple[int, int] | None:
        """(partition, offset) of the execution's first event that occurred after ``when``."""
        ...

    async def checkpoint(self, checkpoint_id: str) -> tuple[str, int] | None:
        """(execution_id, sequence) of the checkpoint with this id, if there is one."""
        ...


@dataclass(frozen=True, slots=True)
class Restored:
    """A restored state and how it was obtained."""

    state: ExecutionState
    position: Position | None
    """Where the last event folded into ``state`` sits in the log."""
    snapshot_key: str | None
    """The snapshot it started from; ``None`` for a replay from the first event."""
    events_folded: int
    skipped: tuple[str, ...] = ()
    """Snapshot objects that were unusable and passed over (their URIs)."""


@dataclass(frozen=True, slots=True)
class _Bound:
    """The end of the prefix to restore: a sequence, a log position, or neither."""

    max_sequence: int | None = None
    before: tuple[int, int] | None = None

    def admits(self, sequence: int, log_order: tuple[int, int]) -> bool:
        if self.max_sequence is not None and sequence > self.max_sequence:
            return False
        return self.before is None or log_order < self.before

    def describe(self) -> str:
        if self.max_sequence is not None:
            return f"sequence {self.max_sequence}"
        return "latest" if self.before is None else f"before partition/offset {self.before}"


_FIRST_CANDIDATES = 4


@dataclass(frozen=True, slots=True)
class _Base:
    """Where a restore starts: a decoded snapshot's state, position and object URI."""

    state: ExecutionState
    position: Position
    key: str


class Restorer:
    """Restores execution states from snapshots and the event archive.

    Archived events are read ``page_size`` at a time, so a restore at a sequence reads
    only as far as the target.
    """

    page_size = 500

    def __init__(
        self,
        *,
        store: SnapshotStore,
        index: SnapshotIndex,
        archive: EventArchive,
        codec: SnapshotCodec,
    ) -> None:
        self.store = store
        self.index = index
        self.archive = archive
        self.codec = codec

    async def latest(self, execution_id: str) -> Restored:
        """The state after every archived event."""
        return await self._restore(execution_id, _Bound())

    async def at_sequence(self, execution_id: str, sequence: int) -> Restored:
        """The state of the longest prefix whose ``last_sequence`` is at most ``sequence``."""
        if sequence < 1:
            raise ValueError(f"sequence {sequence} < 1")
        return await self._restore(execution_id, _Bound(max_sequence=sequence))

    async def at_time(self, execution_id: str, when: datetime) -> Restored:
        """The state before the first event that occurred after ``when``."""
        if when.tzinfo is None:
            raise ValueError("at_time needs a timezone-aware datetime")
        before = await self.archive.first_after(execution_id, when)
        if before is None:
            return await self._restore(execution_id, _Bound())
        return await self._restore(execution_id, _Bound(before=before))

    async def before_position(self, execution_id: str, partition: int, offset: int) -> Restored:
        """The state after every event before ``offset`` of ``partition`` (the snapshotter
        rebuilds an execution this way when its own snapshot cannot serve)."""
        return await self._restore(execution_id, _Bound(before=(partition, offset)))

    async def at_checkpoint(self, checkpoint_id: str) -> Restored:
        """The state right after the checkpoint was saved."""
        found = await self.archive.checkpoint(checkpoint_id)
        if found is None:
            raise NothingToRestore(None, f"checkpoint {checkpoint_id!r} (unknown)")
        execution_id, sequence = found
        return await self.at_sequence(execution_id, sequence)

    async def _restore(self, execution_id: str, bound: _Bound) -> Restored:
        with tracing.span("orchestrator.restore", execution_id=execution_id) as span:
            restored = await self._replay(execution_id, bound)
            if span is not None:
                span.set_attribute("sequence", restored.state.last_sequence)
                span.set_attribute("events_folded", restored.events_folded)
            return restored

    async def _replay(self, execution_id: str, bound: _Bound) -> Restored:
        skipped: list[str] = []
        base = await self._newest_usable(execution_id, bound, skipped)
        state = None if base is None else base.state
        position = None if base is None else base.position
        after = None if position is None else (position.partition, position.offset)
        folded, reached = 0, False
        while not reached:
            page = await self.archive.events(
                execution_id, after=after, before=bound.before, limit=self.page_size
            )
            for event in page:
                nxt: ExecutionState | None = step(state, event.envelope).state
                if bound.max_sequence is not None and nxt is not None:
                    if nxt.last_sequence > bound.max_sequence:
                        reached = True  # the target is passed: read no further
                        break
                state, position, folded = nxt, event.position, folded + 1
            if len(page) < self.page_size:
                break
            after = page[-1].log_order
        if state is None:
            raise NothingToRestore(execution_id, bound.describe())
        return Restored(state, position, None if base is None else base.key, folded, tuple(skipped))

    async def _newest_usable(
        self, execution_id: str, bound: _Bound, skipped: list[str]
    ) -> _Base | None:
        """The newest snapshot within the bound that decodes; a few rows are read first,
        the rest only if all of those are unusable."""
        tried: set[str] = set()
        for limit in (_FIRST_CANDIDATES, None):
            records = await self.index.candidates(
                execution_id, max_sequence=bound.max_sequence, limit=limit
            )
            for record in records:
                if record.object_key in tried or not bound.admits(
                    record.sequence, record.log_order
                ):
                    continue
                tried.add(record.object_key)
                snapshot = await self._load(record, execution_id, bound, skipped)
                if snapshot is not None:
                    return _Base(
                        snapshot.state, snapshot.header.position, self.store.uri(record.object_key)
                    )
            if limit is not None and len(records) < limit:
                break
        return None

    async def _load(
        self, record: SnapshotRecord, execution_id: str, bound: _Bound, skipped: list[str]
    ) -> Snapshot | None:
        uri = self.store.uri(record.object_key)
        try:
            snapshot = self.codec.decode(await self.store.get(record.object_key), uri)
        except (SnapshotCorrupt, SnapshotNotFound) as exc:
            logger.warning(
                "snapshot %s of execution %s at sequence %s is unusable (%s); "
                "using an older snapshot or a replay",
                uri,
                execution_id,
                record.sequence,
                exc,
            )
            skipped.append(uri)
            return None
        header = snapshot.header
        if header.execution_id != execution_id:
            logger.warning(
                "snapshot %s holds execution %s, not %s; skipped",
                uri,
                header.execution_id,
                execution_id,
            )
            skipped.append(uri)
            return None
        if not bound.admits(header.sequence, (header.position.partition, header.position.offset)):
            # The object was rewritten after its index row (a crash between the writes):
            # it is newer than the target, so an older snapshot serves.
            logger.info("snapshot %s is past the target %s; skipped", uri, bound.describe())
            return None
        return snapshot


class MemoryEventArchive:
    """The archive as lists in memory: for tests, benchmarks and the replay tool."""

    def __init__(self, events: Sequence[ArchivedEvent] = ()) -> None:
        self._events: dict[str, list[ArchivedEvent]] = {}
        self._orders: dict[str, list[tuple[int, int]]] = {}
        self.extend(events)

    def extend(self, events: Sequence[ArchivedEvent]) -> None:
        """Add events (any order; each execution's list is kept in log order)."""
        touched = set()
        for event in events:
            key = event.envelope.execution_id or ""
            self._events.setdefault(key, []).append(event)
            touched.add(key)
        for key in touched:
            self._events[key].sort(key=lambda e: e.log_order)
            self._orders[key] = [e.log_order for e in self._events[key]]

    async def events(
        self,
        execution_id: str,
        *,
        after: tuple[int, int] | None = None,
        before: tuple[int, int] | None = None,
        limit: int | None = None,
    ) -> Sequence[ArchivedEvent]:
        orders = self._orders.get(execution_id, [])
        start = 0 if after is None else bisect.bisect_right(orders, after)
        end = len(orders) if before is None else bisect.bisect_left(orders, before)
        if limit is not None:
            end = min(end, start + limit)
        return self._events.get(execution_id, [])[start:end]

    async def first_after(self, execution_id: str, when: datetime) -> tuple[int, int] | None:
        for event in self._events.get(execution_id, []):
            if event.envelope.occurred_at > when:
                return event.log_order
        return None

    async def checkpoint(self, checkpoint_id: str) -> tuple[str, int] | None:
        for execution_id, events in self._events.items():
            for event in events:
                envelope = event.envelope
                if (
                    envelope.event_type == "CheckpointSaved"
                    and getattr(envelope.payload, "checkpoint_id", None) == checkpoint_id
                    and envelope.sequence is not None
                ):
                    return execution_id, envelope.sequence
        return None
