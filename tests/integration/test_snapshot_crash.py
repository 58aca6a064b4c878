"""SIGKILL the snapshotter at random points: every snapshot stays exact, every restore
equals the full fold, and no restart ever folds an execution from a hole.

The snapshotter runs as a real subprocess (``orchestrator-state snapshots run``, filesystem
store) over 50,000+ events of 700 executions, is killed at 20 random points of its
progress (right after a batch commits, or inside the next one) and restarted; the
projection processor archives the log in-process.
"""

from __future__ import annotations

import asyncio
import random
import signal
from collections import defaultdict
from pathlib import Path
from typing import Any

import _projector_support as support
import asyncpg
import pytest

from orchestrator.events.codec import default_codec
from orchestrator.events.envelope import Envelope
from orchestrator.events.fold import fold
from orchestrator.projections import PostgresEventArchive
from orchestrator.projections.processor import Projector
from orchestrator.snapshots import snapshot_history
from orchestrator.snapshots.codec import SnapshotCodec
from orchestrator.snapshots.filesystem import FilesystemSnapshotStore
from orchestrator.snapshots.postgres import PostgresSnapshotIndex
from tests.faults._verifier import verify

pytestmark = pytest.mark.slow

EVENTS = 50_000
EXECUTIONS = 700  # >= 500; simulated runs end early on fatal failures
KILLS = 20
NAME = "crash_snapshotter"


async def _start(dsn: str, bootstrap: str, topic: str, store: Path, log: Path) -> Any:
    return await support.start_cli(
        log,
        "-v",
        "snapshots",
        "run",
        "--database-url",
        dsn,
        "--bootstrap-servers",
        bootstrap,
        "--topic",
        topic,
        "--store",
        f"file://{store}",
        "--name",
        NAME,
        "--frequency",
        "40",
        "--batch-size",
        "500",
        "--session-timeout-ms",
        "6000",
    )


async def _count(dsn: str, sql: str) -> int:
    try:
        return int(await support.fetchval(dsn, sql) or 0)
    except asyncpg.UndefinedTableError:
        return 0


@pytest.mark.timeout(600)
async def test_sigkill_at_random_points_keeps_every_snapshot_exact(
    kafka: Any, make_projection: support.MakeProjection, tmp_path: Path
) -> None:
    bootstrap = kafka.bootstrap_servers
    stderr, store_dir = tmp_path / "snapshotter.log", tmp_path / "snapshots"
    rng = random.Random(20240116)
    hist = support.histories(EXECUTIONS, seed=41, tasks=40)
    events = support.mixed(hist, seed=42)
    assert len(events) >= EVENTS
    topics, settings, dsn = await make_projection(6, batch_size=2000)
    await support.append_all(kafka, topics, events)
    async with support.running_worker(Projector(settings, dsn, bootstrap)):
        # Kill once the snapshot count passes each threshold: mid-stream, never at the end.
        expected = len(events) // 40 + EXECUTIONS
        thresholds = sorted(rng.uniform(0.05, 0.85) * expected for _ in range(KILLS))
        for threshold in thresholds:
            proc = await _start(dsn, bootstrap, topics.pipeline.name, store_dir, stderr)

            async def past(threshold: float = threshold, proc: Any = proc) -> bool:
                if proc.returncode is not None:
                    tail = stderr.read_text(errors="replace")[-3000:]
                    raise AssertionError(f"snapshotter exited {proc.returncode}:\n{tail}")
                return await _count(dsn, "SELECT count(*) FROM snapshots") >= threshold

            await support.wait_until(past, 120, f"{int(threshold)} snapshots", interval=0.02)
            await asyncio.sleep(rng.choice([0.0, rng.uniform(0, 0.3)]))
            proc.send_signal(signal.SIGKILL)
            await proc.wait()

        proc = await _start(dsn, bootstrap, topics.pipeline.name, store_dir, stderr)

        async def done() -> bool:
            assert proc.returncode is None, stderr.read_text(errors="replace")[-3000:]
            committed = await _count(
                dsn,
                f"SELECT sum(next_offset) FROM projection_offsets WHERE projection = '{NAME}'",
            )
            return committed == len(events) and (
                await support.applied_total(dsn, settings.name) == len(events)
            )

        await support.wait_until(done, 150, "the snapshotter to cover every event")
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0

    log_text = stderr.read_text(errors="replace")
    # The low watermark held: no restart met an execution it could not continue
    # from its own snapshot (that would have needed a rebuild from the archive).
    assert "rebuilt from" not in log_text and "unusable" not in log_text
    await _check(dsn, FilesystemSnapshotStore(store_dir), hist)
    verdict = await verify(bootstrap, topics.pipeline.name, dsn, [e.event_id for e in events])
    print(f"verifier: {verdict.records} records, {verdict.executions} executions")
    verdict.check()


async def _check(dsn: str, store: FilesystemSnapshotStore, hist: dict[str, list[Envelope]]) -> None:
    codec = SnapshotCodec()
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        index = PostgresSnapshotIndex(pool)
        archive = PostgresEventArchive(pool, default_codec())
        rows = await index.all()
        keys = await store.list()
        assert sorted(r.object_key for r in rows) == keys  # nothing unindexed, nothing missing
        by_execution: dict[str, list[Any]] = defaultdict(list)
        for row in rows:
            by_execution[row.execution_id].append(row)
        assert set(by_execution) == set(hist)  # every execution ended: all snapshotted
        restorer = snapshot_history(store=store, index=index, archive=archive, codec=codec)
        for eid, events in hist.items():
            archived = await archive.events(eid)
            for row in by_execution[eid]:
                snap = codec.decode(await store.get(row.object_key), row.object_key)
                assert snap.header.position == row.position
                prefix = [a.envelope for a in archived if a.position.offset <= row.position.offset]
                assert snap.state == fold(prefix), row.object_key
            restored = await restorer.latest(eid)
            assert restored.state == fold(events), eid
    finally:
        await pool.close()
