"""The app's hourly retention run (snapshots, retired executions, blobs) runs in the
snapshotter's process and survives its rounds: shortened here to a fraction of a second."""

from __future__ import annotations

import asyncio
from pathlib import Path

from _worker import StartApp


async def test_the_retention_loop_runs_rounds_without_failing(
    start_app: StartApp, tmp_path: Path
) -> None:
    app = await start_app(
        name="retention-loop",
        node_id="retention-node",
        crash_timeout=60,
        failover_timeout=60,
        snapshots=f"file://{tmp_path / 'snapshots'}",
        prune_every=0.2,
    )
    task = app._tasks["retention"]
    await asyncio.sleep(1.5)  # several rounds: each reads the index, Kafka and the store
    assert not task.done() or task.exception() is None, task.exception()
    assert not task.done()
