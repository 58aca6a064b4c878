"""Projection throughput of one processor, and append→visible latency at a steady rate.

What it measures (the processor runs as its own process, ``orchestrator-state
project``, as in production):

- ``events_per_s``: events folded into PostgreSQL per second by one processor,
  catching up on ``--events`` valid events (``events.simulate``, ~10 tasks per
  execution) already in the log: rows, archive and offsets in one transaction per batch.
  A catch-up on ``--warmup-events`` (other topics and database) runs first, unreported:
  a broker just started serves its first fetches while its JVM still compiles them
  (Java took 150% CPU for the first second of the catch-up, on two cores), which is
  start-up, not what one processor can fold; ``--warmup-events 0`` measures cold;
  ``--batch-size`` (default 10,000) is the processor's max records per batch in the
  catch-up: bigger batches amortise per-batch costs (on a 2-core machine, 2,000 gave
  about 22k events/s, 5,000 about 24k, 10,000 about 27k, on one warm broker);
- ``rss_mb_at_tenth`` / ``rss_mb_end``: each processor's resident memory when a tenth
  of the events are folded and at the end (flat memory: the two are close whatever
  ``--events`` is); ``--snapshotter`` runs one beside them and prints its own;
- ``latency_ms_p50/p99/max``: from calling ``append`` to receiving the NOTIFY that the
  execution changed (after the commit, so the row is readable), with ``--rate`` events/s
  appended steadily for ``--seconds`` seconds after ``--warmup`` seconds not measured.

Kafka and PostgreSQL come from ``KAFKA_BOOTSTRAP_SERVERS`` / ``DATABASE_URL`` when
set, else they are started locally (``orchestrator.devstack``). Each run uses fresh
topics and a fresh database. Prints figures; asserts nothing.
Run ``orchestrator-state bench project``.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import random
import statistics
import tempfile
import time
import uuid
from collections import defaultdict, deque
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient
from rich.table import Table

from orchestrator.bench._database import fresh_database
from orchestrator.bench._project_procs import (
    _died,
    _offsets,
    _processor,
    _snapshotter,
    _snapshotter_rss,
    _wait_ready,
)
from orchestrator.bench._rss import rss_mb
from orchestrator.bench._tables import figures_table
from orchestrator.devstack import local_services
from orchestrator.events import (
    Envelope,
    EventLog,
    TopicsConfig,
    TopicSpec,
    default_codec,
    ensure_topics,
    interleave,
    simulate_execution,
)
from orchestrator.projections import STATE_CHANGES_CHANNEL, row_count


def interleave_live(
    histories: list[list[Envelope]], rng: random.Random, live: int | None
) -> Iterator[Envelope]:
    """Histories merged randomly with at most ``live`` of them in flight at once (None:
    all): a log whose concurrency stays the same however long it is, the workload in
    which memory must stay flat."""
    if live is None:
        yield from interleave(histories, rng)
        return
    for start in range(0, len(histories), live):
        yield from interleave(histories[start : start + live], rng)


def make_histories(events: int, *, seed: int, tasks: int = 10) -> list[list[Envelope]]:
    """Valid executions until there are at least ``events`` events (UUID event ids)."""
    rng = random.Random(seed)
    out: list[list[Envelope]] = []
    total = 0
    while total < events:
        eid = f"bench-{seed}-{len(out)}"
        history = [
            replace(e, event_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)))
            for e in simulate_execution(eid, rng, tasks=tasks)
        ]
        out.append(history)
        total += len(history)
    return out


@asynccontextmanager
async def _topics(bootstrap: str, partitions: int) -> AsyncIterator[TopicsConfig]:
    """Fresh topics for one measurement, deleted after it with their DLQ topics: a
    broker that keeps every run's partitions gets slower and noisier run after run."""
    prefix = f"bench-{uuid.uuid4().hex[:8]}."
    topics = TopicsConfig(
        pipeline=TopicSpec(name="orchestrator.pipeline.events", partitions=partitions),
        shared=TopicSpec(name="orchestrator.shared.events", partitions=1),
    ).with_prefix(prefix)
    await ensure_topics(bootstrap, topics.specs())
    try:
        yield topics
    finally:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            ours = [t for t in await admin.list_topics() if t.startswith(prefix)]
            if ours:
                await admin.delete_topics(ours)
        finally:
            await admin.close()


async def throughput(
    bootstrap: str,
    server_dsn: str,
    events: int,
    batch_size: int,
    partitions: int,
    log: Path,
    processors: int = 1,
    snapshotter: bool = False,
    live: int | None = None,
) -> dict[str, Any]:
    """Catch up on ``events`` events already in the log; events/s of the processor(s).
    ``live``: at most this many executions interleaved at once (None: all of them).

    RSS of each processor (and of the snapshotter, when it runs beside them) is read
    when a tenth of the events are folded and again at the end: flat memory means
    the two are close whatever ``events`` is."""
    histories = make_histories(events, seed=1)
    mixed = list(interleave_live(histories, random.Random(2), live))
    async with _topics(bootstrap, partitions) as topics:
        async with EventLog(bootstrap, default_codec(), topics=topics) as event_log:
            for i in range(0, len(mixed), 5000):
                await event_log.append_batch(mixed[i : i + 5000])
        async with fresh_database(server_dsn, "project") as dsn:
            conn = await asyncpg.connect(dsn)
            try:
                async with contextlib.AsyncExitStack() as stack:
                    procs = [
                        await stack.enter_async_context(
                            _processor(dsn, bootstrap, topics, batch_size, log)
                        )
                        for _ in range(processors)
                    ]
                    snap = None
                    if snapshotter:
                        store = Path(tempfile.mkdtemp(prefix="bench-snapshots-"))
                        snap = await stack.enter_async_context(
                            _snapshotter(dsn, bootstrap, topics, store, log)
                        )
                    start_at: float | None = None
                    start_done = 0
                    rss: dict[str, Any] = {}
                    while True:
                        _, done = await _offsets(conn)
                        now = time.perf_counter()
                        if start_at is None and done > 0:
                            start_at, start_done = now, done
                        if "rss_mb_at_tenth" not in rss and done >= len(mixed) // 10:
                            rss["rss_mb_at_tenth"] = [rss_mb(p.pid) for p in procs]
                        if done >= len(mixed):
                            break
                        if any(proc.returncode is not None for proc in procs):
                            raise _died(log)
                        await asyncio.sleep(0.01)
                    rss["rss_mb_end"] = [rss_mb(p.pid) for p in procs]
                    if snap is not None:
                        rss.update(await _snapshotter_rss(conn, snap, len(mixed), log))
                assert start_at is not None
                elapsed = now - start_at
                archived = await row_count(conn, "execution_events")
            finally:
                await conn.close()
    return {
        "processors": processors,
        "events": len(mixed),
        "executions": len(histories),
        "events_per_s": round((len(mixed) - start_done) / elapsed) if elapsed > 0 else None,
        "catch_up_s": round(elapsed, 2),
        "archived": archived,
        **rss,
    }


async def latency(
    bootstrap: str,
    server_dsn: str,
    rate: int,
    seconds: float,
    partitions: int,
    log: Path,
    warmup: float = 1.0,
) -> dict[str, Any]:
    """Append ``rate`` events/s for ``warmup + seconds``; time append -> NOTIFY per event
    appended after the first ``warmup`` seconds (the producer's first sends to each
    partition fetch metadata and take 100+ ms: start-up, not the steady state)."""
    tick = 0.01
    per_tick = max(1, round(rate * tick))
    unmeasured = int(rate * warmup)
    wanted = unmeasured + int(rate * seconds)
    histories = make_histories(wanted + 2000, seed=3)
    queue: deque[deque[Envelope]] = deque(deque(h) for h in histories)
    sent: dict[str, deque[float]] = defaultdict(deque)
    latencies: list[float] = []

    def on_notify(_c: Any, _pid: int, _channel: str, payload: str) -> None:
        now = time.perf_counter()
        for eid in json.loads(payload):
            pending = sent.get(eid)
            while pending:
                latencies.append(now - pending.popleft())

    async with (
        _topics(bootstrap, partitions) as topics,
        fresh_database(server_dsn, "project") as dsn,
        EventLog(bootstrap, default_codec(), topics=topics) as event_log,
    ):
        listener = await asyncpg.connect(dsn)
        try:
            async with _processor(dsn, bootstrap, topics, 2000, log) as proc:
                await _wait_ready(listener, partitions + 1, proc, log)
                await listener.add_listener(STATE_CHANGES_CHANNEL, on_notify)
                # This process times events: its own full collections (50-150 ms, over
                # the histories it holds) would count as latency. Collect now, not during.
                gc.collect()
                gc.disable()
                started = time.perf_counter()
                appended = 0
                k = 0
                while appended < wanted:
                    batch: list[Envelope] = []
                    for _ in range(per_tick):  # the next event of the next executions
                        history = queue.popleft()
                        batch.append(history.popleft())
                        if history:
                            queue.append(history)
                    now = time.perf_counter()
                    for e in batch:
                        if appended >= unmeasured:
                            sent[e.execution_id or ""].append(now)
                    await event_log.append_batch(batch)
                    appended += len(batch)
                    k += 1
                    delay = started + k * tick - time.perf_counter()
                    if delay > 0:
                        await asyncio.sleep(delay)
                achieved = appended / (time.perf_counter() - started)
                await asyncio.sleep(2)  # the last notifications
                rss = rss_mb(proc.pid)
        finally:
            gc.enable()
            await listener.close()
    ms = sorted(x * 1000 for x in latencies)
    missing = sum(len(v) for v in sent.values())

    def pct(p: float) -> float | None:
        return round(ms[min(len(ms) - 1, int(p * len(ms)))], 1) if ms else None

    return {
        "warmup_s": warmup,
        "rate_target": rate,
        "rate_achieved": round(achieved),
        "measured": len(ms),
        "not_seen": missing,
        "latency_ms_p50": pct(0.50),
        "latency_ms_p99": pct(0.99),
        "latency_ms_max": round(ms[-1], 1) if ms else None,
        "latency_ms_mean": round(statistics.fmean(ms), 1) if ms else None,
        "latency_processor_rss_mb": rss,
    }


async def run_project_bench(
    events: int = 100_000,
    rate: int = 2000,
    seconds: float = 10.0,
    batch_size: int = 10_000,
    partitions: int = 12,
    processors: int = 1,
    warmup: float = 1.0,
    warmup_events: int = 20_000,
    snapshotter: bool = False,
    live: int | None = None,
) -> dict[str, Any]:
    """Both measurements on env-named services, else on locally started ones.
    ``processors`` > 1 runs the catch-up with that many group members (scaling);
    ``snapshotter`` runs one beside them (its RSS is printed); ``seconds`` 0 skips the
    latency run."""
    async with local_services(s3=False) as endpoints:
        bootstrap, dsn = endpoints.kafka_bootstrap, endpoints.database_url
        assert bootstrap is not None and dsn is not None
        log = Path(tempfile.mkdtemp(prefix="bench-project-")) / "processor.log"
        result: dict[str, Any] = {"processor_log": str(log)}
        if warmup_events > 0:  # a catch-up not reported: see the module docstring
            await throughput(bootstrap, dsn, warmup_events, batch_size, partitions, log, processors)
            result["warmup_events"] = warmup_events
        result.update(
            await throughput(
                bootstrap, dsn, events, batch_size, partitions, log, processors, snapshotter, live
            )
        )
        if seconds > 0:
            result.update(await latency(bootstrap, dsn, rate, seconds, partitions, log, warmup))
        return result


def render(result: dict[str, Any]) -> Table:
    """The figures as a two-column rich table."""
    return figures_table("projection: one processor", result)
