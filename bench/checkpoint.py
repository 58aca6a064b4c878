"""``checkpoint.save`` throughput and latency: durable and acknowledged (acks=all).

What it measures, on fresh topics and a fresh database:

- ``one_execution``: one task of one execution saving checkpoints back to back, each
  ``await checkpoint.save(...)`` returning only once Kafka acknowledged the event
  (acks=all, idempotent producer where the broker has one);
- ``concurrent``: ``executions`` executions (default 100), each with its own writer
  and task, saving concurrently.

Every save carries ``payload_bytes`` (default 10 KB) of JSON data (random text, so
zstd only halves it) plus metadata with a datetime, goes through ``decide`` (checked
against the execution's state), is Avro-encoded and appended by the execution's
fenced writer. The projection processor is not running: the figures are the write
path's. Kafka / PostgreSQL come from ``KAFKA_BOOTSTRAP_SERVERS`` / ``DATABASE_URL``
when set, else local servers are started (``orchestrator.devstack``).

Run ``orchestrator-state bench checkpoint``.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg
from rich.table import Table

from orchestrator.bench import _tables as tables
from orchestrator.bench._compare_common import payloads
from orchestrator.bench._database import fresh_database
from orchestrator.bench._rss import rss_mb
from orchestrator.commands import (
    CreateExecution,
    ExecutionWriter,
    StartTask,
    StartValidation,
    SucceedValidation,
)
from orchestrator.events import EventLog, TopicsConfig, TopicSpec, default_codec, ensure_topics
from orchestrator.projections import ProjectionSettings
from orchestrator.state import StateRuntime, StateSettings, checkpoint


@asynccontextmanager
async def _services() -> AsyncIterator[tuple[str, bool, str, str]]:
    """(bootstrap, supports_idempotence, description, server DSN): env or local servers."""
    from orchestrator.devstack import local_services

    async with local_services(s3=False) as endpoints:
        kafka = endpoints.kafka
        assert endpoints.database_url is not None
        yield (
            kafka.bootstrap_servers,
            kafka.supports_idempotence,
            kafka.description,
            endpoints.database_url,
        )


async def _start(runtime: StateRuntime, execution_id: str) -> ExecutionWriter:
    writer = await runtime.create_execution(
        CreateExecution(execution_id=execution_id, pipeline_id="bench", tasks=("work",))
    )
    await writer.execute_many([StartValidation(), SucceedValidation(), StartTask(task_id="work")])
    return writer


async def _saves(writer: ExecutionWriter, values: list[dict[str, Any]]) -> list[float]:
    """Latencies (ms) of sequential saves of ``values`` in ``writer``'s task (built by
    the caller before its clock starts, as the compare's LangGraph side builds its own)."""
    latencies: list[float] = []
    with checkpoint.task_scope(writer, "work"):
        for i, data in enumerate(values):
            t0 = time.perf_counter()
            await checkpoint.save(
                name=f"step_{i}", data=data, metadata={"timestamp": datetime.now()}
            )
            latencies.append((time.perf_counter() - t0) * 1000)
    return latencies


def _figures(latencies: list[float], elapsed: float, cpu: float) -> dict[str, float | None]:
    """``cpu``: this process's CPU seconds over the run, which other load barely moves;
    the process's resident memory right after it."""
    q = statistics.quantiles(latencies, n=100)
    return {
        "saves": len(latencies),
        "saves_per_s": round(len(latencies) / elapsed),
        "latency_ms_p50": round(q[49], 2),
        "latency_ms_p99": round(q[98], 2),
        "cpu_us_per_save": round(cpu / len(latencies) * 1e6),
        "rss_mb": rss_mb(),
    }


async def run_checkpoint_bench(
    *,
    saves: int = 2000,
    executions: int = 100,
    saves_per_execution: int = 50,
    payload_bytes: int = 10_240,
) -> dict[str, Any]:
    """Run both scenarios and return their figures (see the module docstring)."""
    async with _services() as (bootstrap, idempotence, description, server_dsn):
        prefix = f"bench-{uuid.uuid4().hex[:8]}."
        topics = TopicsConfig(
            pipeline=TopicSpec(name=prefix + "pipeline.events", partitions=12),
            shared=TopicSpec(name=prefix + "shared.events", partitions=3),
        )
        await ensure_topics(bootstrap, [topics.pipeline, topics.shared])
        projection = ProjectionSettings(
            pipeline_topic=topics.pipeline.name, shared_topic=topics.shared.name
        )
        async with fresh_database(server_dsn, "checkpoint", migrated=True) as dsn:
            pool = await asyncpg.create_pool(dsn, min_size=2, max_size=20)
            log = EventLog(
                bootstrap, default_codec(), topics=topics, supports_idempotence=idempotence
            )
            try:
                async with log:
                    settings = StateSettings(node_id="bench", projection=projection)
                    runtime = StateRuntime(pool=pool, log=log, settings=settings)
                    async with runtime:
                        one = await _start(runtime, "bench-one")
                        await _saves(one, payloads(20, payload_bytes, 0))  # warm-up
                        values = payloads(saves, payload_bytes, 1)
                        t0, cpu0 = time.perf_counter(), time.process_time()
                        single = await _saves(one, values)
                        single_s = time.perf_counter() - t0
                        single_cpu = time.process_time() - cpu0
                        single_figures = _figures(single, single_s, single_cpu)

                        writers = await asyncio.gather(
                            *(_start(runtime, f"bench-{i}") for i in range(executions))
                        )
                        batches = [
                            payloads(saves_per_execution, payload_bytes, 100 + i)
                            for i in range(executions)
                        ]
                        t0, cpu0 = time.perf_counter(), time.process_time()
                        per_writer = await asyncio.gather(
                            *(_saves(w, b) for w, b in zip(writers, batches, strict=True))
                        )
                        concurrent_s = time.perf_counter() - t0
                        concurrent_cpu = time.process_time() - cpu0
                        merged = [ms for batch in per_writer for ms in batch]
                        concurrent = _figures(merged, concurrent_s, concurrent_cpu)
                    idempotent = log.idempotent
            finally:
                await pool.close()
    return {
        "broker": description,
        "idempotent producer": idempotent,
        "payload_bytes": payload_bytes,
        "one execution": single_figures,
        f"{executions} concurrent executions": concurrent,
    }


def render(result: dict[str, Any]) -> Table:
    """The figures as a rich table: one row per scenario."""
    title = (
        f"checkpoint.save, {result['payload_bytes']:,}-byte data, acks=all "
        f"({result['broker']}, idempotent={result['idempotent producer']})"
    )
    table = tables.table(
        title, "scenario", "saves", "saves/s", "p50 ms", "p99 ms", "CPU µs/save", "RSS MB"
    )
    for name, figures in result.items():
        if isinstance(figures, dict):
            table.add_row(
                name,
                f"{figures['saves']:,}",
                f"{figures['saves_per_s']:,}",
                f"{figures['latency_ms_p50']:.2f}",
                f"{figures['latency_ms_p99']:.2f}",
                f"{figures['cpu_us_per_save']:,}",
                f"{figures['rss_mb']}",
            )
    return table
