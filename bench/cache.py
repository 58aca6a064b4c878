"""Latest-state reads through the state cache: L1 (memory), L2 (Redis), L3 (disk), none.

Prints, never asserts: ``StateManager.get_pipeline_state`` p50/p99 (ms) for executions
held in the read model (PostgreSQL), read through each level alone (after one warm-up
read per execution) and uncached, with the process's RSS after each run. Targets:
L1 p50 <= 0.05 ms, L2 p50 <= 1 ms.

PostgreSQL and Redis come from ``DATABASE_URL`` / ``REDIS_URL`` or are started locally;
Kafka is not needed (the rows are written as the processor would write them).

Run ``orchestrator-state bench cache``.
"""

from __future__ import annotations

import datetime as dt
import random
import statistics
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
from rich.table import Table

from orchestrator.bench import _tables as tables
from orchestrator.bench._database import fresh_database
from orchestrator.bench._rss import rss_mb
from orchestrator.events import EventLog, ExecutionState, TaskState, default_codec
from orchestrator.projections import (
    PostgresOffsets,
    ProjectionSettings,
    copy_rows,
    migrate,
    pipeline_row,
)
from orchestrator.projections import task_rows as rm_task_rows
from orchestrator.state import (
    EXECUTION,
    CacheConfig,
    LevelSpec,
    StateManager,
    StateRuntime,
    StateSettings,
    scope_of,
)

TOPIC = "orchestrator.pipeline.events"
PROJECTION = "bench_cache"
LEVELS = {
    "l1": LevelSpec(name="l1", type="memory", size=100 * 2**20, ttl=60),
    "l2": LevelSpec(name="l2", type="redis", size=2**20, ttl=3600),
    "l3": LevelSpec(name="l3", type="disk", size=2**30, ttl=86400),
}

RUNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("L1", ("l1",)),
    ("L2", ("l2",)),
    ("L3", ("l3",)),
    ("none", ()),
)


def _state(i: int, tasks: int) -> ExecutionState:
    now = dt.datetime.now(dt.UTC)
    done = {
        f"task_{t}": TaskState(
            task_id=f"task_{t}",
            status="completed",
            attempts=1,
            started_at=now,
            completed_at=now,
            inputs={"query": f"q{t}", "limit": 50},
            outputs={"rows": [{"id": r, "score": r / 7} for r in range(12)]},
        )
        for t in range(tasks)
    }
    return ExecutionState(
        execution_id=f"exec_{i:06d}",
        pipeline_id="bench_pipeline",
        status="running",
        epoch=1,
        owner="bench",
        last_sequence=tasks * 3 + 1,
        created_at=now,
        started_at=now,
        updated_at=now,
        progress=0.5,
        completed_tasks=tuple(done),
        context={"user": "bench", "input_data": {"source": "s3://bucket/key"}},
        tasks=done,
    )


async def _fill(pool: asyncpg.Pool, executions: int, tasks: int) -> list[str]:
    """Rows as the processor writes them, and its applied offset."""
    states = [_state(i, tasks) for i in range(executions)]
    pipeline = [
        pipeline_row(s, event_count=s.last_sequence, last_position=(TOPIC, 0, n))
        for n, s in enumerate(states)
    ]
    task_rows = [row for s in states for row in rm_task_rows(s)]
    async with pool.acquire() as conn:
        await copy_rows(conn, {"pipeline_states": pipeline, "task_states": task_rows})
        await PostgresOffsets(PROJECTION).claim(conn, [(TOPIC, 0)], {(TOPIC, 0): executions})
    return [s.execution_id for s in states]


async def _measure(manager: StateManager, ids: list[str], samples: int) -> tuple[float, float]:
    for eid in ids:  # warm: one read per execution fills the level
        await manager.get_pipeline_state(eid)
    rng = random.Random(7)
    times = []
    for _ in range(samples):
        eid = rng.choice(ids)
        t = time.perf_counter()
        await manager.get_pipeline_state(eid)
        times.append(time.perf_counter() - t)
    times.sort()
    return statistics.median(times) * 1000, times[int(len(times) * 0.99) - 1] * 1000


async def run_cache_bench(
    *,
    executions: int = 200,
    tasks: int = 10,
    samples: int = 5000,
    dsn: str | None = None,
    redis_url: str | None = None,
) -> dict[str, Any]:
    """p50/p99 per level and uncached, the encoded state size and RSS."""
    async with _services(dsn, redis_url) as (database, redis):
        async with asyncpg.create_pool(database, min_size=1, max_size=4) as pool:
            async with pool.acquire() as conn:
                await migrate(conn)
            ids = await _fill(pool, executions, tasks)
            log = EventLog("127.0.0.1:9", default_codec())  # never started: reads only
            base = StateSettings(projection=ProjectionSettings(name=PROJECTION))
            scope = scope_of(database, f"{PROJECTION}-{uuid.uuid4().hex[:6]}")
            result: dict[str, Any] = {"executions": executions, "tasks": tasks, "runs": {}}
            with tempfile.TemporaryDirectory(prefix="bench-cache-") as tmp:
                for run, levels in RUNS:
                    config = CacheConfig(
                        levels=tuple(LEVELS[n] for n in levels),
                        redis_url=redis,
                        directory=Path(tmp),
                        namespace=scope,
                    )
                    runtime = StateRuntime(pool=pool, log=log, settings=replace(base, cache=config))
                    try:
                        p50, p99 = await _measure(StateManager(runtime), ids, samples)
                        stats = runtime.cache.stats()
                    finally:
                        await runtime.cache.close()
                    rates = {k: v["hit_rate"] for k, v in stats.items() if "hit_rate" in v}
                    result["runs"][run] = {
                        "p50_ms": p50,
                        "p99_ms": p99,
                        "rss_mb": rss_mb() or 0.0,
                        "hit_rate": rates,
                    }
            result["state_bytes"] = len(EXECUTION.encode(_state(0, tasks)))
    return result


@asynccontextmanager
async def _services(dsn: str | None, redis_url: str | None) -> AsyncIterator[tuple[str, str]]:
    from orchestrator.devstack import DevStack

    async with DevStack(
        kafka=False, postgres=dsn is None, s3=False, redis=redis_url is None, redis_appendonly=False
    ) as stack:
        database = dsn or stack.endpoints.database_url
        redis = redis_url or stack.endpoints.redis_url
        assert database is not None and redis is not None
        async with fresh_database(database, "cache") as fresh:
            yield fresh, redis


def render(result: dict[str, Any]) -> Table:
    title = (
        f"cache: latest-state reads of {result['executions']} executions "
        f"({result['tasks']} tasks, {result['state_bytes']:,} B encoded each); "
        "targets p50: L1 <= 0.05 ms, L2 <= 1 ms"
    )
    table = tables.table(title, "level", "p50 ms", "p99 ms", "hit rate", "RSS MB")
    for run, figures in result["runs"].items():
        rate = ", ".join(f"{v:.3f}" for v in figures["hit_rate"].values()) or "-"
        table.add_row(
            run,
            f"{figures['p50_ms']:.4f}",
            f"{figures['p99_ms']:.4f}",
            rate,
            f"{figures['rss_mb']:.0f}",
        )
    return table
