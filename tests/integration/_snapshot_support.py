"""Shared helpers of the snapshot tests: a snapshotter over a test's projection, and the
processor and the snapshotter run together until both have read the whole log."""

from __future__ import annotations

import asyncpg
from _projector_support import applied_total, running_worker, wait_until

from orchestrator.events import History
from orchestrator.events.codec import default_codec
from orchestrator.events.topics import TopicsConfig
from orchestrator.projections import PostgresEventArchive
from orchestrator.projections.processor import Projector
from orchestrator.projections.settings import ProjectionSettings
from orchestrator.snapshots import SnapshotIndex, SnapshotStore, snapshot_history
from orchestrator.snapshots.codec import SnapshotCodec
from orchestrator.snapshots.policy import SnapshotPolicy
from orchestrator.snapshots.snapshotter import Snapshotter, SnapshotterSettings


def archive_restorer(
    pool: asyncpg.Pool, store: SnapshotStore, codec: SnapshotCodec, index: SnapshotIndex
) -> History:
    """The history service over ``store`` and ``index`` whose events come from the
    projection's archive in ``pool``'s database (the default tables)."""
    return snapshot_history(
        store=store, index=index, archive=PostgresEventArchive(pool, default_codec()), codec=codec
    )


def snapshotter_for(
    topics: TopicsConfig,
    dsn: str,
    bootstrap: str,
    store: SnapshotStore,
    codec: SnapshotCodec,
    *,
    frequency: int,
    batch_size: int = 200,
) -> Snapshotter:
    """A snapshotter of the pipeline topic: a snapshot every ``frequency`` events, no timer."""
    return Snapshotter(
        SnapshotterSettings(topic=topics.pipeline.name, batch_size=batch_size),
        dsn=dsn,
        bootstrap=bootstrap,
        store=store,
        codec=codec,
        policy=SnapshotPolicy(frequency=frequency, interval=None),
    )


async def project_and_snapshot(
    settings: ProjectionSettings, dsn: str, bootstrap: str, snapshotter: Snapshotter, records: int
) -> None:
    """Run the processor and ``snapshotter`` until each has read ``records`` records, then
    stop both (a run that failed fails the test here)."""
    async with running_worker(Projector(settings, dsn, bootstrap)), running_worker(snapshotter):

        async def caught_up() -> bool:
            return (
                snapshotter.records >= records
                and await applied_total(dsn, settings.name) >= records
            )

        await wait_until(caught_up, 90, "the processor and the snapshotter")
