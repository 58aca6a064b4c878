"""``rebuild`` replays the log into fresh tables and swaps them in when caught up.

While it runs, the live tables keep serving reads and the live processor keeps
applying new events; after the swap the tables equal the pure fold of the whole log,
and what was there before the rebuild is there unchanged.
"""

from __future__ import annotations

import asyncio
from typing import Any

import _projector_support as support
import asyncpg
import pytest

from orchestrator.projections.processor import Projector
from orchestrator.projections.rebuilder import Rebuilder, RebuildProgress

TABLES = ("pipeline_states", "task_states", "checkpoints", "execution_events")


async def _dump(dsn: str) -> dict[str, list[dict[str, Any]]]:
    conn = await asyncpg.connect(dsn)
    try:
        out = {}
        for table in TABLES:
            rows = await conn.fetch(f"SELECT * FROM {table}")
            out[table] = sorted((dict(r) for r in rows), key=lambda r: repr(sorted(r.items())))
        return out
    finally:
        await conn.close()


@pytest.mark.timeout(240)
async def test_rebuild_matches_the_live_tables_which_serve_throughout(
    kafka: Any, make_projection: support.MakeProjection
) -> None:
    bootstrap = kafka.bootstrap_servers
    before = support.mixed(support.histories(200, seed=51), seed=52)
    during = support.mixed(support.histories(100, seed=53), seed=54)
    after = support.mixed(support.histories(20, seed=55), seed=56)
    topics, settings, dsn = await make_projection(4, name="rebuilt")
    async with support.event_log(bootstrap, topics, kafka.supports_idempotence) as log:
        await support.produce(log, before)
        live = Projector(settings, dsn, bootstrap)
        await live.start()
        live_run = asyncio.create_task(live.run())

        async def applied(n: int) -> bool:
            return await support.applied_total(dsn, settings.name) == n

        await support.wait_until(lambda: applied(len(before)), 60, "the live processor")
        snapshot = await _dump(dsn)

        # Readers of the live tables during the rebuild: every read must succeed.
        reads: list[int] = []
        reading = asyncio.Event()

        async def reader() -> None:
            conn = await asyncpg.connect(dsn)
            try:
                while not reading.is_set():
                    reads.append(await conn.fetchval("SELECT count(*) FROM pipeline_states"))
                    await asyncio.sleep(0.01)
            finally:
                await conn.close()

        reader_task = asyncio.create_task(reader())
        progress: list[RebuildProgress] = []

        async def write_during() -> None:
            for i in range(0, len(during), 300):
                await support.produce(log, during[i : i + 300])
                await asyncio.sleep(0.05)

        report, _ = await asyncio.gather(
            Rebuilder(settings, dsn, bootstrap, on_progress=progress.append).run(),
            write_during(),
        )
        reading.set()
        await reader_task

        assert report.swapped
        assert progress and progress[-1].phase == "swapped"
        assert all(p.done <= p.total for p in progress)
        assert len(reads) > 10 and reads == sorted(reads)  # served, and never went back
        assert reads[0] == 200

        # The live processor goes on after the swap (fenced once, then re-seeks).
        await support.produce(log, after)
        everything = before + during + after
        await support.wait_until(
            lambda: applied(len(everything)), 60, "the live processor after the swap"
        )
        live.request_stop()
        await live_run
        await live.stop()

    assert await support.compare_with_fold(dsn, support.by_execution(everything), settings) == []
    # What was there before the rebuild is there again, row for row.
    rebuilt = await _dump(dsn)
    before_ids = {e.execution_id for e in before}
    for table in ("pipeline_states", "task_states", "checkpoints"):
        old = snapshot[table]
        new = [r for r in rebuilt[table] if r["execution_id"] in before_ids]
        assert new == old, table
    old_positions = {
        (r["topic"], r["partition"], r["offset"]) for r in snapshot["execution_events"]
    }
    assert [
        r
        for r in rebuilt["execution_events"]
        if (r["topic"], r["partition"], r["offset"]) in old_positions
    ] == snapshot["execution_events"]
    conn = await asyncpg.connect(dsn)
    try:
        leftovers = await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE tablename LIKE '%\\_\\_rebuild'"
            " OR tablename LIKE '%\\_\\_old'"
        )
        offsets = await conn.fetch("SELECT DISTINCT projection FROM projection_offsets")
    finally:
        await conn.close()
    assert leftovers == []
    assert [r["projection"] for r in offsets] == [settings.name]
