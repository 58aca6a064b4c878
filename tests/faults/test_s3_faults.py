"""The snapshot store (S3) unreachable for 30 s under load: the snapshotter does not
exit, logs the outage once, and catches up when S3 is back; the read model still
equals the fold of the log (independent verifier)."""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
from _stack import Load, fault_stack, until
from _verifier import verify_eventually

from orchestrator.devstack import ApacheKafkaServer, PostgresServer, S3Server
from orchestrator.snapshots.policy import SnapshotPolicy
from orchestrator.snapshots.s3 import S3SnapshotStore
from orchestrator.snapshots.snapshotter import Snapshotter, SnapshotterSettings

OUTAGE_S = 30


async def test_s3_unreachable_for_30s_snapshotter_rides_out_and_catches_up(
    steady_kafka: ApacheKafkaServer,
    own_postgres: PostgresServer,
    own_s3: S3Server,
    caplog: pytest.LogCaptureFixture,
) -> None:
    bootstrap = steady_kafka.bootstrap_servers
    caplog.set_level(logging.WARNING, logger="orchestrator.snapshots.snapshotter")
    async with fault_stack(bootstrap, own_postgres.dsn) as stack:
        store = S3SnapshotStore(
            own_s3.bucket, f"faults-{uuid.uuid4().hex[:8]}/", client=own_s3.client()
        )
        snapshotter = Snapshotter(
            SnapshotterSettings(
                name=f"snapshotter_{uuid.uuid4().hex[:8]}",
                topic=stack.topics.pipeline.name,
                archive_projection=stack.projection.name,
            ),
            dsn=own_postgres.dsn,
            bootstrap=bootstrap,
            store=store,
            policy=SnapshotPolicy(frequency=5, interval=None),
        )
        load = Load(stack, executions=3)
        async with snapshotter:
            task = asyncio.create_task(snapshotter.run(), name="snapshotter")
            load.start()
            await until(lambda: snapshotter.snapshots_written >= 3)

            await own_s3.kill()
            await asyncio.sleep(OUTAGE_S)  # writes go on; snapshots cannot be stored
            assert not task.done(), "the snapshotter exited during the S3 outage"
            during = snapshotter.snapshots_written
            await own_s3.resume()

            await until(lambda: snapshotter.snapshots_written >= during + 3)
            await load.stop()
            assert not task.done()
            snapshotter.request_stop()
            await asyncio.wait_for(task, 60)

        verdict = await verify_eventually(
            bootstrap, stack.topics.pipeline.name, own_postgres.dsn, stack.log.acknowledged
        )
        verdict.check()
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.name == "orchestrator.snapshots.snapshotter" and "unavailable" in r.getMessage()
    ]
    assert 1 <= len(lines) <= 2, lines  # once per outage, not once per attempt
