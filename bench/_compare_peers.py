"""The peers' side of ``bench compare``: LangGraph's Postgres checkpointer, DBOS and
``eventsourcing`` (the ``compare`` extra), each doing the work ours does in
``bench/_compare_ours.py`` on the same PostgreSQL. Imported only when they are installed.
"""

from __future__ import annotations

import asyncio
import functools
import random
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from orchestrator.bench._compare_common import (
    PEER_PACKAGES,
    chat_message,
    figures,
    median_ms,
    payloads,
    public_bytes,
    saver_figures,
)

__all__ = ["PEER_PACKAGES"]


# --- LangGraph: AsyncPostgresSaver.aput ---------------------------------------------------


async def _saver_pool(dsn: str, size: int) -> Any:
    from psycopg.rows import dict_row
    from psycopg_pool import AsyncConnectionPool

    pool = AsyncConnectionPool(
        dsn,
        min_size=2,
        max_size=size,
        open=False,
        kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": dict_row},
    )
    await pool.open()
    return pool


def _checkpoint(channel: str, value: Any, version: int) -> Any:
    from langgraph.checkpoint.base import empty_checkpoint

    cp = empty_checkpoint()
    cp["channel_values"] = {channel: value}
    cp["channel_versions"] = {channel: version}
    return cp


async def _aput_run(saver: Any, thread: str, values: list[Any], channel: str) -> list[float]:
    """Latencies (ms) of one thread's sequential ``aput`` calls, one per value."""
    config: Any = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    latencies = []
    for i, value in enumerate(values):
        cp = _checkpoint(channel, value, i + 1)
        metadata: Any = {"source": "loop", "step": i, "parents": {}}
        t0 = time.perf_counter()
        config = await saver.aput(config, cp, metadata, {channel: i + 1})
        latencies.append((time.perf_counter() - t0) * 1000)
    return latencies


async def langgraph_checkpoint(
    dsn: str, *, saves: int, executions: int, per_execution: int, size: int, pool_size: int
) -> dict[str, dict[str, float]]:
    """LangGraph ``aput`` of ``size``-byte data: one thread sequential, then many at once."""
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    pool = await _saver_pool(dsn, pool_size)
    try:
        saver = AsyncPostgresSaver(pool)
        await saver.setup()
        await _aput_run(saver, "warm", payloads(20, size, 0), "data")
        values = payloads(saves, size, 1)
        t0 = time.perf_counter()
        single = await _aput_run(saver, "one", values, "data")
        single_s = time.perf_counter() - t0
        batches = [payloads(per_execution, size, 100 + w) for w in range(executions)]
        t0 = time.perf_counter()
        runs = await asyncio.gather(
            *(_aput_run(saver, f"t{w}", b, "data") for w, b in enumerate(batches))
        )
        many_s = time.perf_counter() - t0
    finally:
        await pool.close()
    return {"c1": figures(single, single_s), "c100": figures([x for r in runs for x in r], many_s)}


async def postgres_saver(
    dsn: str, *, saves: int, threads: int, per_thread: int, size: int, pool_size: int
) -> dict[str, float]:
    """``AsyncPostgresSaver.aput`` on a pool of ``pool_size``, the same checkpoints as
    ``AsyncKafkaSaver`` gets (``saver_figures``): c1 and c100."""
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    pool = await _saver_pool(dsn, pool_size)
    try:
        saver = AsyncPostgresSaver(pool)
        await saver.setup()
        return await saver_figures(
            saver, saves=saves, threads=threads, per_thread=per_thread, size=size
        )
    finally:
        await pool.close()


async def langgraph_storage(dsn: str, *, steps: int) -> dict[str, float]:
    """Bytes in PostgreSQL after ``steps`` checkpoints of a chat history growing ~1 KB each."""
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver

    pool = await _saver_pool(dsn, 4)
    try:
        saver = AsyncPostgresSaver(pool)
        await saver.setup()
        rng = random.Random(5)
        history: list[dict[str, str]] = []
        config: Any = {"configurable": {"thread_id": "chat", "checkpoint_ns": ""}}
        for i in range(steps):
            history.append(chat_message(rng, i))
            cp = _checkpoint("messages", list(history), i + 1)
            metadata: Any = {"source": "loop", "step": i, "parents": {}}
            config = await saver.aput(config, cp, metadata, {"messages": i + 1})
    finally:
        await pool.close()
    return {**await public_bytes(dsn)}


# --- DBOS: @DBOS.step inside a @DBOS.workflow ----------------------------------------------

_dbos_workflow: Callable[[int], Any] | None = None


def _launch_dbos(dsn: str) -> Callable[[int], Any]:
    """DBOS is one per process: launched on first use, destroyed by ``stop_dbos``."""
    global _dbos_workflow
    if _dbos_workflow is not None:
        return _dbos_workflow
    from dbos import DBOS

    DBOS(config={"name": "bench_compare", "system_database_url": dsn, "log_level": "WARNING"})
    output = "x" * 1024

    @DBOS.step()
    async def task(i: int) -> str:
        return output

    @DBOS.workflow()
    async def pipeline(n: int) -> int:
        for i in range(n):
            await task(i)
        return n

    DBOS.launch()
    _dbos_workflow = pipeline
    return pipeline


def stop_dbos() -> None:
    global _dbos_workflow
    if _dbos_workflow is not None:
        from dbos import DBOS

        DBOS.destroy(destroy_registry=True)
        _dbos_workflow = None


async def dbos_task_overhead(dsn: str, *, runs: int, tasks: int) -> dict[str, float]:
    """Median wall ms of a 1-step and a ``tasks``-step workflow; marginal ms per step."""
    pipeline = _launch_dbos(dsn)
    for _ in range(3):  # warm-up
        await pipeline(tasks)
    one, many = [], []
    for _ in range(runs):
        t0 = time.perf_counter()
        await pipeline(1)
        one.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        await pipeline(tasks)
        many.append(time.perf_counter() - t0)
    return _marginal(one, many, tasks)


def _marginal(one: list[float], many: list[float], tasks: int) -> dict[str, float]:
    m1, mn = statistics.median(one) * 1000, statistics.median(many) * 1000
    return {"one_ms": m1, "many_ms": mn, "per_task_ms": (mn - m1) / (tasks - 1)}


# --- eventsourcing: Application on its PostgreSQL recorder -------------------------------


def _es_env(dsn: str) -> dict[str, str]:
    url = urlsplit(dsn)
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": url.path.lstrip("/"),
        "POSTGRES_HOST": url.hostname or "127.0.0.1",
        "POSTGRES_PORT": str(url.port or 5432),
        "POSTGRES_USER": url.username or "postgres",
        "POSTGRES_PASSWORD": url.password or "",
    }


@functools.cache
def _es_classes() -> tuple[type, type, type]:
    """(aggregate, application snapshotting every 100, application without snapshots);
    made once: eventsourcing registers each class under its name."""
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate, event

    class Execution(Aggregate):  # type: ignore[misc,unused-ignore]
        """Task statuses by name, like an execution's state."""

        def __init__(self) -> None:
            self.tasks: dict[str, list[Any]] = {}
            self.last = ""

        @event("Changed")
        def change(self, task: str, status: str, data: str) -> None:
            self.tasks[task] = [status, len(self.tasks)]
            self.last = data

    class Executions(Application):  # type: ignore[misc,type-arg,unused-ignore]
        snapshotting_intervals = {Execution: 100}  # noqa: RUF012 (the library's API)

    class PlainExecutions(Application):  # type: ignore[misc,type-arg,unused-ignore]
        """No snapshots: the append run."""

    return Execution, Executions, PlainExecutions


def es_append(dsn: str, *, events: int, batch_size: int, streams: int = 4) -> dict[str, float]:
    """Events/s saved in batches of ``batch_size`` ~300-byte events (one save each)."""
    execution_cls, _, app_cls = _es_classes()
    app = app_cls(env=_es_env(dsn))
    try:
        data = "x" * 200
        aggregates = [execution_cls() for _ in range(streams)]
        app.save(*aggregates)
        t0 = time.perf_counter()
        for i in range(0, events, batch_size):
            agg = aggregates[(i // batch_size) % streams]
            for j in range(min(batch_size, events - i)):
                agg.change(f"task-{(i + j) % 17}", "completed", data)
            app.save(agg)
        elapsed = time.perf_counter() - t0
    finally:
        app.close()
    return {"events_per_s": events / elapsed}


def es_restore(dsn: str, *, events: int, samples: int) -> dict[str, float]:
    """p50/p99 ms of ``repository.get`` of one aggregate of ``events`` events (snapshot
    every 100: the latest snapshot and the events after it)."""
    execution_cls, app_cls, _ = _es_classes()
    app = app_cls(env=_es_env(dsn))
    try:
        agg = execution_cls()
        for i in range(events - 1):  # the creation event is the first
            agg.change(f"task_{(i // 500) % 200}", "failed" if i % 3 else "running", "r" * 50)
            if i % 1000 == 999:
                app.save(agg)
        app.save(agg)
        latencies = []
        for _ in range(samples):
            t0 = time.perf_counter()
            restored = app.repository.get(agg.id)
            latencies.append(time.perf_counter() - t0)
        assert restored.version == agg.version
    finally:
        app.close()
    p50, p99 = median_ms(latencies)
    return {"p50_ms": p50, "p99_ms": p99}


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]
