"""The snapshotter and restore against real Kafka, PostgreSQL and S3.

The projection processor archives the log (``execution_events``); the snapshotter, its
own consumer group, writes snapshots to S3 and indexes them; restore from snapshot +
archive must equal the pure fold of each execution's events, before and after the
snapshotter is stopped and restarted mid-history.
"""

from __future__ import annotations

import random
import uuid
from typing import Any

import _projector_support as support
import asyncpg

from orchestrator.devstack import S3Endpoint
from orchestrator.events.codec import default_codec
from orchestrator.events.envelope import Envelope
from orchestrator.events.fold import fold
from orchestrator.projections import PostgresEventArchive
from orchestrator.projections.processor import Projector
from orchestrator.snapshots import snapshot_history
from orchestrator.snapshots.codec import SnapshotCodec
from orchestrator.snapshots.policy import SnapshotPolicy
from orchestrator.snapshots.postgres import PostgresSnapshotIndex
from orchestrator.snapshots.s3 import S3SnapshotStore
from orchestrator.snapshots.snapshotter import Snapshotter, SnapshotterSettings
from tests.histories import fold_to_sequence as _at_sequence


async def _check_restores(
    dsn: str, store: S3SnapshotStore, codec: SnapshotCodec, expected: dict[str, list[Envelope]]
) -> int:
    """Every snapshot decodes, matches its row and the fold of the log up to its position;
    every restore equals the fold."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        index = PostgresSnapshotIndex(pool)
        archive = PostgresEventArchive(pool, default_codec())
        rows = await index.all()
        for row in rows:
            snap = codec.decode(await store.get(row.object_key), store.uri(row.object_key))
            header = snap.header
            assert (header.execution_id, header.sequence) == (row.execution_id, row.sequence)
            assert header.position == row.position and row.size_bytes > 0
            upto = await archive.events(
                row.execution_id, before=(row.position.partition, row.position.offset + 1)
            )
            assert snap.state == fold(e.envelope for e in upto), row.object_key
        restorer = snapshot_history(store=store, index=index, archive=archive, codec=codec)
        rng = random.Random(5)
        for eid, events in expected.items():
            full = fold(events)
            assert full is not None
            restored = await restorer.latest(eid)
            assert restored.state == full, eid
            assert restored.skipped == ()
            for sequence in rng.sample(
                range(1, full.last_sequence + 1), min(3, full.last_sequence)
            ):
                at = await restorer.at_sequence(eid, sequence)
                assert at.state == _at_sequence(events, sequence), (eid, sequence)
            for ref in full.checkpoints:
                cp = await restorer.at_checkpoint(ref.checkpoint_id)
                assert cp.state == _at_sequence(events, ref.sequence)
        return len(rows)
    finally:
        await pool.close()


async def test_snapshots_and_restore_equal_the_fold_across_a_restart(
    kafka: Any, make_projection: support.MakeProjection, s3: S3Endpoint
) -> None:
    bootstrap = kafka.bootstrap_servers
    hist = support.histories(40, seed=31, tasks=12)
    rng = random.Random(32)
    # A third of the executions stop mid-way in the first half: still running when the
    # snapshotter stops, so their unsnapshotted events hold its offsets back.
    first: dict[str, list[Envelope]] = {}
    for eid, events in hist.items():
        cut = len(events) > 5 and rng.random() < 0.35
        first[eid] = events[: rng.randint(3, len(events) - 1)] if cut else events
    rest = [e for eid, events in hist.items() for e in events[len(first[eid]) :]]
    part1 = support.mixed(first, seed=33)
    topics, settings, dsn = await make_projection(3, batch_size=500)
    store = S3SnapshotStore(s3.bucket, f"pipeline-{uuid.uuid4().hex[:8]}", client=s3.client())
    codec = SnapshotCodec()
    snap_settings = SnapshotterSettings(topic=topics.pipeline.name, batch_size=300)
    policy = SnapshotPolicy(frequency=7, interval=None)

    def new_snapshotter() -> Snapshotter:
        """The snapshotter of this store (a new one is a restart)."""
        return Snapshotter(
            snap_settings, dsn=dsn, bootstrap=bootstrap, store=store, codec=codec, policy=policy
        )

    async with support.event_log(bootstrap, topics, kafka.supports_idempotence) as log:
        await support.produce(log, part1)
        async with support.running_worker(Projector(settings, dsn, bootstrap)):
            async with support.running_worker(new_snapshotter()) as snapshotter:

                async def caught_up() -> bool:
                    return snapshotter.records >= len(part1) and await support.applied_total(
                        dsn, settings.name
                    ) >= len(part1)

                await support.wait_until(caught_up, 90, "both consumers to read the first half")
                held = snapshotter.tracker.dirty_count
                watermark = snapshotter.positions
            assert held > 0, "some running executions hold events since their snapshot"
            assert sum(watermark.values()) < len(part1)  # held back, not at the end
            await _check_restores(dsn, store, codec, first)

            await support.produce(log, rest)
            async with support.running_worker(new_snapshotter()) as again:

                async def all_read() -> bool:
                    total = len(part1) + len(rest)
                    return (
                        await support.applied_total(dsn, settings.name) >= total
                        and sum(again.positions.values()) >= total
                    )

                await support.wait_until(all_read, 90, "the restarted snapshotter to finish")
                assert again.tracker.dirty_count == 0  # every execution ended: all snapshotted
        count = await _check_restores(dsn, store, codec, hist)
    assert count >= len(hist)
