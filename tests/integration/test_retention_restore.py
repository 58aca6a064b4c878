"""A retention run leaves every kept execution restorable: restore == the full fold.

Many snapshots per execution, Kafka's retention deleting the first half of every
partition, then the seed's retention rules at their strictest (one snapshot, all of
them too old): each execution keeps its newest snapshot and the one covering what
Kafka deleted, and every restore (latest, at a sequence, at a checkpoint) still
equals the fold of the execution's whole history.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
from _projector_support import (
    MakeProjection,
    applied_total,
    event_log,
    histories,
    mixed,
    produce,
    running_worker,
    wait_until,
)
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from orchestrator.events.codec import default_codec
from orchestrator.events.fold import fold
from orchestrator.projections import PostgresEventArchive
from orchestrator.projections.processor import Projector
from orchestrator.snapshots import snapshot_history
from orchestrator.snapshots.codec import SnapshotCodec
from orchestrator.snapshots.filesystem import FilesystemSnapshotStore
from orchestrator.snapshots.policy import RetentionPolicy, SnapshotPolicy
from orchestrator.snapshots.postgres import PostgresSnapshotIndex
from orchestrator.snapshots.retention import (
    apply_plan,
    earliest_offsets,
    plan_retention,
    run_retention,
)
from orchestrator.snapshots.snapshotter import Snapshotter, SnapshotterSettings
from tests.histories import fold_to_sequence


async def test_a_retention_run_leaves_every_kept_execution_restorable(
    kafka: Any, make_projection: MakeProjection, tmp_path: Path
) -> None:
    bootstrap = kafka.bootstrap_servers
    hist = histories(20, seed=81, tasks=8)
    for eid in list(hist)[:3]:  # three still running: retention must leave them whole
        hist[eid] = hist[eid][:-1]
    events = mixed(hist, seed=82)
    topics, settings, dsn = await make_projection(2)
    store = FilesystemSnapshotStore(tmp_path / "snapshots")
    codec = SnapshotCodec()
    snapshotter = Snapshotter(
        SnapshotterSettings(topic=topics.pipeline.name, batch_size=200),
        dsn=dsn,
        bootstrap=bootstrap,
        store=store,
        codec=codec,
        policy=SnapshotPolicy(frequency=4, interval=None),
    )
    async with event_log(bootstrap, topics, kafka.supports_idempotence) as log:
        await produce(log, events)
    async with running_worker(Projector(settings, dsn, bootstrap)):
        async with running_worker(snapshotter):

            async def caught_up() -> bool:
                return snapshotter.records >= len(events) and await applied_total(
                    dsn, settings.name
                ) >= len(events)

            await wait_until(caught_up, 90, "the processor and the snapshotter")

    # Kafka's retention deletes the first half of every partition.
    tps = [(topics.pipeline.name, p) for p in range(2)]
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        ends = {tp: o for tp, o in (await earliest_offsets(bootstrap, tps)).items()}
        consumer_ends = await _end_offsets(dsn, settings.name)
        await admin.delete_records(
            {TopicPartition(t, p): RecordsToDelete(consumer_ends[(t, p)] // 2) for t, p in tps}
        )
    finally:
        await admin.close()
    earliest = await earliest_offsets(bootstrap, tps)
    assert all(earliest[tp] > ends[tp] for tp in tps)

    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        index = PostgresSnapshotIndex(pool)
        before = await index.all()
        assert len(before) > 2 * len(hist)  # several snapshots per execution
        plan = plan_retention(
            before,
            RetentionPolicy(max_checkpoints=1, max_age_days=1),
            now=datetime.now(UTC) + timedelta(days=2),
            earliest_offsets=earliest,
        )
        assert any("Kafka's earliest offset" in d.reason for d in plan.protected)
        assert await apply_plan(plan, index=index, store=store) == len(plan.delete) > 0
        kept = await index.all()
        by_execution: dict[str, list[Any]] = {}
        for record in kept:
            by_execution.setdefault(record.execution_id, []).append(record)
        assert set(by_execution) == set(hist)  # no execution lost its last snapshot
        for eid, records in by_execution.items():
            tp = (records[0].position.topic, records[0].position.partition)
            if any(r.position.offset <= earliest[tp] for r in before if r.execution_id == eid):
                assert any(r.position.offset <= earliest[tp] for r in records), eid

        restorer = snapshot_history(
            store=store,
            index=index,
            archive=PostgresEventArchive(pool, default_codec()),
            codec=codec,
        )
        rng = random.Random(83)
        for eid, history in hist.items():
            full = fold(history)
            assert full is not None
            restored = await restorer.latest(eid)
            assert restored.state == full and restored.skipped == (), eid
            for sequence in rng.sample(range(1, full.last_sequence + 1), 3):
                at = await restorer.at_sequence(eid, sequence)
                assert at.state == fold_to_sequence(history, sequence), (eid, sequence)
            for ref in full.checkpoints:
                cp = await restorer.at_checkpoint(ref.checkpoint_id)
                assert cp.state == fold_to_sequence(history, ref.sequence)

        # Read-model and archive retention: executions finished over retention_days
        # ago are retired (rows and archived events deleted) where a kept terminal
        # snapshot covers them whole; each still restores to its full fold.
        finished = {e for e, h in hist.items() if _finished(h)}
        assert finished
        run = await run_retention(
            pool,
            RetentionPolicy(max_checkpoints=1, max_age_days=1, retention_days=1),
            index=index,
            store=store,
            tables=settings.tables,
            now=datetime.now(UTC) + timedelta(days=2),
            earliest=earliest,
        )
        assert set(run.retirement.retire) == finished and run.retirement.stay == ()
        assert run.retired.executions == len(finished) and run.retired.archived_events > 0
        left = {
            r["execution_id"]
            for r in await pool.fetch(f"SELECT execution_id FROM {settings.tables.pipeline_states}")
        }
        assert left == set(hist) - finished  # the unfinished ones stay, whole
        assert not await pool.fetchval(
            f"SELECT count(*) FROM {settings.tables.execution_events}"
            " WHERE execution_id = ANY($1::text[])",
            list(finished),
        )
        for eid, history in hist.items():
            restored = await restorer.latest(eid)
            assert restored.state == fold(history), eid
    finally:
        await pool.close()


def _finished(history: list[Any]) -> bool:
    state = fold(history)
    return state is not None and state.status in ("completed", "failed", "cancelled")


async def _end_offsets(dsn: str, projection: str) -> dict[tuple[str, int], int]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT topic, partition, next_offset FROM projection_offsets WHERE projection = $1",
            projection,
        )
    finally:
        await conn.close()
    return {(r["topic"], r["partition"]): r["next_offset"] for r in rows}
