"""The app's hourly retention run (snapshots, retired executions, blobs) runs in the
snapshotter's process and survives its rounds: shortened here to a fraction of a second."""

from __future__ import annotations

import asyncio
from pathlib import Path

from _databases import MakeDatabase
from _worker import supervising_app

from orchestrator.devstack import ServiceEndpoints


async def test_the_retention_loop_runs_rounds_without_failing(
    services: ServiceEndpoints, make_database: MakeDatabase, tmp_path: Path
) -> None:
    async with supervising_app(
        services,
        await make_database(migrated=False),
        tmp_path,
        name="retention-loop",
        node_id="retention-node",
        crash_timeout=60,
        failover_timeout=60,
        snapshots=f"file://{tmp_path / 'snapshots'}",
        prune_every=0.2,
    ) as app:
        task = app._tasks["retention"]
        await asyncio.sleep(1.5)  # several rounds: each reads the index, Kafka and the store
        assert not task.done() or task.exception() is None, task.exception()
        assert not task.done()
