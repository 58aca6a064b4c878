"""Append throughput of the event log from one process, and the codec's cost per event.

What it measures, on fresh topics (12 partitions, acks=all, idempotent where the broker
allows, zstd):

- ``append_events_per_s``: ~300-byte ``TaskCompleted`` events through
  ``EventLog.append_batch`` (the fast path), ``concurrency`` writers each appending
  ``batch_size`` events at a time for their own executions, as command handlers of
  several executions would;
- ``single_append_ms_p50/p99``: one ``append`` awaited at a time (the latency a
  command that writes one event sees);
- ``append_cpu_us_per_event``: this process's CPU per appended event (encode and
  produce), which, unlike events/s, does not depend on what else runs on the machine;
- ``encode_us`` / ``decode_us``: the Avro codec alone, per event.

Kafka comes from ``KAFKA_BOOTSTRAP_SERVERS`` when set, else a local broker is started
(``orchestrator.devstack``). Run ``orchestrator-state bench append --events 200000``.
"""

from __future__ import annotations

import asyncio
import statistics
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from rich.table import Table

from orchestrator.bench._rss import rss_mb
from orchestrator.bench._tables import figures_table
from orchestrator.events import (
    Envelope,
    EventLog,
    ExecutionDetails,
    ProducerSettings,
    TaskCompleted,
    TopicsConfig,
    TopicSpec,
    default_codec,
    encode_user_data,
    ensure_topics,
)

EVENT_BYTES = 300


def make_events(count: int, executions: int, *, target_bytes: int = EVENT_BYTES) -> list[Envelope]:
    """``count`` TaskCompleted events over ``executions`` executions, ~target_bytes each."""
    codec = default_codec()
    ids = [str(uuid.uuid4()) for _ in range(executions)]

    def event(i: int, pad: int) -> Envelope:
        return Envelope(
            execution_id=ids[i % executions],
            pipeline_id="bench-pipeline",
            sequence=i // executions + 1,
            epoch=1,
            producer="bench",
            payload=TaskCompleted(
                task_id=f"task-{i % 17}",
                outputs=encode_user_data({"result": "x" * pad, "n": i}),
                details=ExecutionDetails(duration=0.25, model_calls=1, tokens_used=812),
            ),
        )

    pad = max(0, target_bytes - len(codec.encode(event(0, 0))))
    return [event(i, pad) for i in range(count)]


def time_codec(events: Sequence[Envelope]) -> tuple[float, float, float]:
    """Mean encode µs, mean decode µs and mean encoded size in bytes."""
    codec = default_codec()
    start = time.perf_counter()
    blobs = [codec.encode(e) for e in events]
    encoded = time.perf_counter()
    for blob in blobs:
        codec.decode(blob)
    decoded = time.perf_counter()
    n = len(events)
    return (
        (encoded - start) / n * 1e6,
        (decoded - encoded) / n * 1e6,
        sum(len(b) for b in blobs) / n,
    )


@asynccontextmanager
async def _kafka(bootstrap: str | None) -> AsyncIterator[tuple[str, bool | None, str]]:
    """(bootstrap, supports_idempotence, description): the given broker or a local one."""
    if bootstrap is not None:
        yield bootstrap, None, f"Kafka at {bootstrap}"
        return
    from orchestrator.devstack import local_services  # the bench sits above every layer

    async with local_services(postgres=False, s3=False) as endpoints:
        kafka = endpoints.kafka
        yield kafka.bootstrap_servers, kafka.supports_idempotence, kafka.description


async def _append_concurrently(
    log: EventLog, events: Sequence[Envelope], batch_size: int, concurrency: int
) -> tuple[float, float]:
    """(wall, this process's CPU) seconds to append all events.

    Writer w owns the executions whose index is w modulo ``concurrency``.
    """
    by_writer: list[list[Envelope]] = [[] for _ in range(concurrency)]
    owner: dict[str | None, int] = {}
    for e in events:
        by_writer[owner.setdefault(e.execution_id, len(owner) % concurrency)].append(e)

    async def writer(mine: list[Envelope]) -> None:
        for i in range(0, len(mine), batch_size):
            await log.append_batch(mine[i : i + batch_size])

    start, cpu = time.perf_counter(), time.process_time()
    async with asyncio.TaskGroup() as tg:
        for mine in by_writer:
            tg.create_task(writer(mine))
    return time.perf_counter() - start, time.process_time() - cpu


async def run_append_bench(
    bootstrap: str | None,
    events: int = 100_000,
    *,
    batch_size: int = 1000,
    concurrency: int = 4,
    executions: int = 1000,
    single_appends: int = 300,
    warmup_events: int = 20_000,
    settings: ProducerSettings | None = None,
    partitions: int = 12,
) -> dict[str, Any]:
    """Run the benchmark and return its figures (see the module docstring)."""
    sample = make_events(events, executions)
    encode_us, decode_us, event_bytes = time_codec(sample[: min(events, 20_000)])
    async with _kafka(bootstrap) as (servers, supports_idempotence, description):
        topics = TopicsConfig(
            pipeline=TopicSpec(name="bench.pipeline.events", partitions=partitions)
        ).with_prefix(f"{uuid.uuid4().hex[:8]}.")
        await ensure_topics(servers, [topics.pipeline])
        async with EventLog(
            servers,
            default_codec(),
            settings,
            topics=topics,
            supports_idempotence=supports_idempotence,
        ) as log:
            # Warm up: metadata, connections, producer id, and the broker's JIT (a JVM
            # started a moment ago is several times slower for its first seconds).
            warmup = make_events(warmup_events, executions) if warmup_events else sample[:1]
            await _append_concurrently(log, warmup, batch_size, concurrency)
            elapsed, cpu = await _append_concurrently(log, sample, batch_size, concurrency)
            latencies = []
            for e in make_events(single_appends, 1):
                t0 = time.perf_counter()
                await log.append(e)
                latencies.append((time.perf_counter() - t0) * 1000)
            written = sum((await log.end_offsets()).values())
            rss = rss_mb()
            idempotent = log.idempotent
    quantiles = statistics.quantiles(latencies, n=100)
    return {
        "broker": description,
        "idempotent": idempotent,
        "events": events,
        "event_bytes": round(event_bytes),
        "batch_size": batch_size,
        "concurrency": concurrency,
        "append_seconds": round(elapsed, 3),
        "append_events_per_s": round(events / elapsed),
        "append_mb_per_s": round(events * event_bytes / elapsed / 1e6, 1),
        # CPU of this process per appended event (encode + produce): the figure that
        # does not move when other processes share the machine.
        "append_cpu_us_per_event": round(cpu / events * 1e6, 2),
        "rss_mb": rss,
        "single_append_ms_p50": round(quantiles[49], 2),
        "single_append_ms_p99": round(quantiles[98], 2),
        "encode_us": round(encode_us, 2),
        "decode_us": round(decode_us, 2),
        "warmup_events": warmup_events,
        # Written records (the warm-up and single appends included): a check, not a figure.
        "records_in_topic": written,
    }


def render(result: dict[str, Any]) -> Table:
    """The figures as a two-column rich table."""
    return figures_table("event log append (one process, acks=all)", result)
