"""How the snapshotter starts holding an execution it meets for the first time.

From its newest snapshot (the events that snapshot covers are then skipped), from
nothing when the event met is its creation, or, when neither serves (the snapshot is
unusable, or the execution's first events are gone from the log), rebuilt from the
projection's archive once that projection has caught up, and snapshotted at once.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from orchestrator.events import catalogue as c
from orchestrator.events.consumer import DecodedRecord
from orchestrator.events.envelope import Position
from orchestrator.events.log import EventCodecLike
from orchestrator.projections.positions import wait_for_position
from orchestrator.snapshots._tracker import SnapshotTracker
from orchestrator.snapshots.codec import Snapshot, SnapshotCodec
from orchestrator.snapshots.errors import (
    NothingToRestore,
    SnapshotCorrupt,
    SnapshotNotFound,
    SnapshotterFailed,
)
from orchestrator.snapshots.postgres import PostgresEventArchive, PostgresSnapshotIndex
from orchestrator.snapshots.restore import Restorer
from orchestrator.snapshots.store import SnapshotStore

if TYPE_CHECKING:
    from orchestrator.snapshots.snapshotter import SnapshotterSettings

logger = logging.getLogger(__name__)


class Meeting:
    """Bootstraps executions into the tracker (one instance per snapshotter)."""

    def __init__(
        self,
        pool: Any,
        store: SnapshotStore,
        codec: SnapshotCodec,
        settings: SnapshotterSettings,
        tracker: SnapshotTracker,
        event_codec: EventCodecLike,
    ) -> None:
        self.pool = pool
        self.store = store
        self.codec = codec
        self.settings = settings
        self.tracker = tracker
        self.event_codec = event_codec

    async def meet(self, firsts: dict[str, DecodedRecord]) -> None:
        """Hold each execution met for the first time, from its newest snapshot, from
        nothing (its first event is here), or rebuilt from the archive."""
        if not firsts:
            return
        index = PostgresSnapshotIndex(self.pool, self.settings.index_table)
        latest = await index.latest(list(firsts))
        loaded = await asyncio.gather(
            *(self._load(eid, rec.object_key) for eid, rec in latest.items())
        )
        snapshots = {eid: snap for eid, snap in zip(latest, loaded, strict=True) if snap}
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
            created = isinstance(envelope.payload, c.ExecutionCreated) and envelope.sequence == 1
            if eid not in latest and created:
                self.tracker.adopt(eid, tp, None)
                continue
            await self._rebuild(eid, first.position, has_snapshot=eid in latest)

    async def _load(self, execution_id: str, key: str) -> Snapshot | None:
        uri = self.store.uri(key)
        try:
            snap = self.codec.decode(await self.store.get(key), uri)
        except (SnapshotCorrupt, SnapshotNotFound) as exc:
            logger.warning("snapshot %s of execution %s is unusable: %s", uri, execution_id, exc)
            return None
        if snap.header.execution_id != execution_id:
            logger.warning("snapshot %s holds execution %s", uri, snap.header.execution_id)
            return None
        return snap

    async def _rebuild(self, execution_id: str, first: Position, *, has_snapshot: bool) -> None:
        """Rebuild from the archive the state before ``first``, and snapshot it."""
        tp = (first.topic, first.partition)
        s = self.settings
        if s.archive_projection is None:
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
                s.archive_projection,
                Position(first.topic, first.partition, first.offset - 1),
                s.archive_wait_s,
            )
            if not caught_up:
                raise SnapshotterFailed(
                    f"projection {s.archive_projection!r} has not archived up to here after "
                    f"{s.archive_wait_s}s; cannot rebuild the execution",
                    retriable=True,
                    topic=first.topic,
                    partition=first.partition,
                    offset=first.offset,
                    execution_id=execution_id,
                )
        restorer = Restorer(
            store=self.store,
            index=PostgresSnapshotIndex(self.pool, s.index_table),
            archive=PostgresEventArchive(
                self.pool,
                self.event_codec,
                events_table=s.events_table,
                checkpoints_table=s.tables.checkpoints,
            ),
            codec=self.codec,
        )
        try:
            restored = await restorer.before_position(execution_id, first.partition, first.offset)
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
