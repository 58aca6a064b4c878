"""A rebuild after Kafka's retention deleted the oldest records loses no execution.

The records before a partition's earliest offset exist only in the live archive; the
rebuild folds them from there, so every execution is rebuilt equal to the fold of its
full history and the archive keeps every row. If the archive lacks them too, the
rebuild refuses, names the executions, and leaves the live tables as they were.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import _projector_support as support
import asyncpg
import pytest
from _snapshot_support import archive_restorer, project_and_snapshot, snapshotter_for
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, RecordsToDelete

from orchestrator.events.consumer import EventConsumer
from orchestrator.events.consumer import TopicPartition as OurTP
from orchestrator.events.fold import fold
from orchestrator.projections.errors import RebuildError
from orchestrator.projections.processor import Projector
from orchestrator.projections.rebuilder import Rebuilder
from orchestrator.snapshots.codec import SnapshotCodec
from orchestrator.snapshots.filesystem import FilesystemSnapshotStore
from orchestrator.snapshots.policy import RetentionPolicy
from orchestrator.snapshots.postgres import PostgresSnapshotIndex
from orchestrator.snapshots.retention import run_retention


async def _delete_first_half(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    """Kafka's retention at work: every partition's records before half its end go, and
    all of partition 0's (whose last record is a dead letter, not in the archive)."""
    async with EventConsumer(bootstrap) as consumer:
        ends = await consumer.end_offsets(OurTP(topic, p) for p in range(partitions))
    cut = {tp.partition: end if tp.partition == 0 else end // 2 for tp, end in ends.items()}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_records(
            {TopicPartition(topic, p): RecordsToDelete(before_offset=o) for p, o in cut.items()}
        )
    finally:
        await admin.close()
    async with EventConsumer(bootstrap) as consumer:
        begins = await consumer.beginning_offsets(OurTP(topic, p) for p in range(partitions))
    assert {tp.partition: o for tp, o in begins.items()} == cut
    return cut


async def _count(dsn: str, sql: str) -> int:
    return int(await support.fetchval(dsn, sql))


@pytest.mark.timeout(240)
async def test_rebuild_after_retention_keeps_every_execution_and_the_archive(
    kafka: Any, make_projection: support.MakeProjection
) -> None:
    bootstrap = kafka.bootstrap_servers
    hist = support.histories(15, seed=71, tasks=4)
    events = [e for h in hist.values() for e in h]  # one after the other: the first go whole
    topics, settings, dsn = await make_projection(3, name="retained")
    await support.append_all(kafka, topics, events)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:  # a poison record ends partition 0: dead-lettered, so never archived
        await producer.send_and_wait(topics.pipeline.name, b"\x00garbage", partition=0)
    finally:
        await producer.stop()
    async with support.running_worker(Projector(settings, dsn, bootstrap)):
        await support.wait_until(
            lambda: _applied(dsn, settings.name, len(events) + 1), 60, "the live processor"
        )
    cut = await _delete_first_half(bootstrap, topics.pipeline.name, 3)
    assert sum(cut.values()) > 0
    archived = await _count(dsn, "SELECT count(*) FROM execution_events")
    assert archived == len(events)

    # The archive lost the oldest execution's rows too: the rebuild refuses, names it.
    first = next(iter(hist))
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            "CREATE TABLE held AS SELECT * FROM execution_events WHERE execution_id = $1", first
        )
        await conn.execute("DELETE FROM execution_events WHERE execution_id = $1", first)
    finally:
        await conn.close()
    with pytest.raises(RebuildError, match=first):
        await Rebuilder(settings, dsn, bootstrap).run()
    assert await _count(dsn, "SELECT count(*) FROM pipeline_states") == len(hist)
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("INSERT INTO execution_events SELECT * FROM held")
        await conn.execute("DROP TABLE held")
    finally:
        await conn.close()

    report = await Rebuilder(settings, dsn, bootstrap).run()
    assert report.swapped
    assert report.from_archive == sum(cut.values()) - 1  # all but the dead letter
    assert await support.compare_with_fold(dsn, support.by_execution(events), settings) == []
    assert await _count(dsn, "SELECT count(*) FROM execution_events") == archived


async def _applied(dsn: str, name: str, n: int) -> bool:
    return await support.applied_total(dsn, name) == n


@pytest.mark.timeout(240)
async def test_rebuild_after_a_retention_run_and_kafka_retention_loses_no_kept_execution(
    kafka: Any, make_projection: support.MakeProjection, tmp_path: Path
) -> None:
    """Executions finished long ago are retired (read-model rows and archive deleted, the
    terminal snapshot kept); Kafka's retention deletes the oldest records; a rebuild
    then keeps every execution still in the read model, and each retired one still
    restores from its snapshot to the fold of its whole history."""
    bootstrap = kafka.bootstrap_servers
    hist = support.histories(12, seed=72, tasks=4)
    running = list(hist)[-4:]  # these never finish: they must survive everything
    for eid in running:
        hist[eid] = hist[eid][:-1]
    events = [e for h in hist.values() for e in h]
    topics, settings, dsn = await make_projection(3, name="retired")
    await support.append_all(kafka, topics, events)
    store, codec = FilesystemSnapshotStore(tmp_path / "snapshots"), SnapshotCodec()
    snapshotter = snapshotter_for(topics, dsn, bootstrap, store, codec, frequency=5, batch_size=100)
    await project_and_snapshot(settings, dsn, bootstrap, snapshotter, len(events))
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        index = PostgresSnapshotIndex(pool)
        run = await run_retention(
            pool,
            RetentionPolicy(max_checkpoints=1, max_age_days=None, retention_days=1),
            index=index,
            store=store,
            tables=settings.tables,
            now=datetime.now(UTC) + timedelta(days=2),
        )
        retired = set(run.retirement.retire)
        assert retired == set(hist) - set(running) and run.retirement.stay == ()
        cut = await _delete_first_half(bootstrap, topics.pipeline.name, 3)
        assert sum(cut.values()) > 0

        report = await Rebuilder(settings, dsn, bootstrap).run()
        assert report.swapped
        kept = {eid: hist[eid] for eid in running}
        assert await support.compare_with_fold(dsn, kept, settings, exhaustive=False) == []
        restorer = archive_restorer(pool, store, codec, index)
        for eid, history in hist.items():
            assert (await restorer.latest(eid)).state == fold(history), eid
    finally:
        await pool.close()
