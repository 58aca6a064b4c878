"""The snapshotter's bootstrap of executions it meets for the first time.

From its newest snapshot (the events that snapshot covers are then skipped), from
nothing when the event met is its creation, or, when neither serves (the snapshot is
unusable, or the execution's first events are gone from the log), rebuilt through the
history service (newest usable snapshot + the archived events before the record met)
once the archive's projection has caught up, and snapshotted at once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from orchestrator.events import (
    DecodedRecord,
    EventCodecLike,
    ExecutionCreated,
    History,
    NothingToRestore,
    Position,
)
from orchestrator.projections import PostgresEventArchive, wait_for_position
from orchestrator.snapshots._tracker import SnapshotTracker
from orchestrator.snapshots.bases import SnapshotBaseReader
from orchestrator.snapshots.codec import SnapshotCodec
from orchestrator.snapshots.errors import SnapshotterFailed
from orchestrator.snapshots.postgres import PostgresSnapshotIndex
from orchestrator.snapshots.store import SnapshotStore

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ArchiveSource:
    """Where the bootstrap rebuilds from: the index table, and the archive of the
    projection ``projection`` (``None``: no archive), waited on up to ``wait_s``."""

    index_table: str
    events_table: str
    checkpoints_table: str
    projection: str | None
    wait_s: float


class ExecutionBootstrap:
    """Bootstraps executions into the tracker (one instance per snapshotter)."""

    def __init__(
        self,
        pool: Any,
        store: SnapshotStore,
        codec: SnapshotCodec,
        source: ArchiveSource,
        tracker: SnapshotTracker,
        event_codec: EventCodecLike,
    ) -> None:
        self.pool = pool
        self.source = source
        self.tracker = tracker
        self.bases = SnapshotBaseReader(
            PostgresSnapshotIndex(pool, source.index_table), codec, store, cache_bytes=0
        )
        archive = PostgresEventArchive(
            pool,
            event_codec,
            events_table=source.events_table,
            checkpoints_table=source.checkpoints_table,
        )
        self.history = History(archive, snapshots=self.bases)

    async def meet(self, firsts: dict[str, DecodedRecord]) -> None:
        """Hold each execution met for the first time, from its newest snapshot, from
        nothing (its first event is here), or rebuilt from the archive."""
        if not firsts:
            return
        indexed, snapshots = await self.bases.newest_of(list(firsts))
        for eid, first in firsts.items():
            tp = (first.position.topic, first.position.partition)
            snap = snapshots.get(eid)
            if snap is not None:
                header = snap.header
                self.tracker.adopt(
                    eid, tp, snap.state, covered=header.position, occurred_at=header.occurred_at
                )
                continue
            envelope = first.envelope
            assert envelope is not None
            created = isinstance(envelope.payload, ExecutionCreated) and envelope.sequence == 1
            if eid not in indexed and created:
                self.tracker.adopt(eid, tp, None)
                continue
            await self._rebuild(eid, first.position, has_snapshot=eid in indexed)

    async def _rebuild(self, execution_id: str, first: Position, *, has_snapshot: bool) -> None:
        """Rebuild from the archive the state before ``first``, and snapshot it."""
        tp = (first.topic, first.partition)
        s = self.source
        if s.projection is None:
            if has_snapshot:
                raise SnapshotterFailed(
                    "its latest snapshot is unusable and no archive is configured",
                    retriable=False,
                    topic=first.topic,
                    partition=first.partition,
                    offset=first.offset,
                    execution_id=execution_id,
                )
            logger.warning(
                "execution %s: its first events are gone from %s[%s] and it has no snapshot;"
                " it is not snapshotted",
                execution_id,
                first.topic,
                first.partition,
            )
            self.tracker.adopt(execution_id, tp, None)
            return
        if first.offset > 0:
            caught_up = await wait_for_position(
                self.pool,
                s.projection,
                Position(first.topic, first.partition, first.offset - 1),
                s.wait_s,
            )
            if not caught_up:
                raise SnapshotterFailed(
                    f"projection {s.projection!r} has not archived up to here after "
                    f"{s.wait_s}s; cannot rebuild the execution",
                    retriable=True,
                    topic=first.topic,
                    partition=first.partition,
                    offset=first.offset,
                    execution_id=execution_id,
                )
        try:
            restored = await self.history.before_position(
                execution_id, first.partition, first.offset
            )
        except NothingToRestore:
            logger.warning("execution %s: nothing before %s to rebuild from", execution_id, first)
            self.tracker.adopt(execution_id, tp, None)
            return
        assert restored.position is not None
        logger.info(
            "execution %s rebuilt from %s + %s archived event(s)",
            execution_id,
            restored.snapshot_key or "its first event",
            restored.events_folded,
        )
        self.tracker.adopt_unsnapshotted(
            execution_id, tp, restored.state, restored.position, None, first.offset
        )
