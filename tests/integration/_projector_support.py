"""Shared helpers of the processor tests: topics and settings, histories, the log,
running workers, and the check that the read model equals the pure fold of the log.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, NamedTuple, Protocol, TypeVar

import asyncpg

from orchestrator.devstack import KafkaEndpoint
from orchestrator.events.codec import default_codec
from orchestrator.events.envelope import Envelope
from orchestrator.events.fold import Outcome, fold, step
from orchestrator.events.log import EventLog
from orchestrator.events.simulate import interleave, simulate_execution
from orchestrator.events.topics import TopicsConfig, TopicSpec, ensure_topics
from orchestrator.projections import readmodel as rm
from orchestrator.projections.settings import ProjectionSettings


class Worker(Protocol):
    """What `running_worker` drives: the processor and the snapshotter."""

    async def start(self) -> None: ...
    async def run(self) -> None: ...
    def request_stop(self) -> None: ...
    async def stop(self) -> None: ...


W = TypeVar("W", bound=Worker)

CLI = [sys.executable, "-c", "from orchestrator.cli import main; main()"]


class Projection(NamedTuple):
    """A test's projection (see the `make_projection` fixture): fresh topics, settings
    naming them, and a fresh database."""

    topics: TopicsConfig
    settings: ProjectionSettings
    dsn: str


MakeProjection = Callable[..., Awaitable[Projection]]
"""The `make_projection` fixture: `await make_projection(partitions, prepared, **settings)`."""


async def fresh_topics(bootstrap: str, partitions: int = 6) -> TopicsConfig:
    """Pipeline and shared topics (and DLQs) under a prefix no other test uses."""
    base = TopicsConfig(
        pipeline=TopicSpec(name="orchestrator.pipeline.events", partitions=partitions),
        shared=TopicSpec(name="orchestrator.shared.events", partitions=2),
    )
    topics = base.with_prefix(f"test-{uuid.uuid4().hex[:10]}.")
    await ensure_topics(bootstrap, topics.specs())
    return topics


def settings_for(
    topics: TopicsConfig, name: str = "read_models", **kw: object
) -> ProjectionSettings:
    return ProjectionSettings(
        name=name,
        pipeline_topic=topics.pipeline.name,
        shared_topic=topics.shared.name,
        **kw,  # type: ignore[arg-type]
    )


async def start_cli(log: Path, *args: str) -> asyncio.subprocess.Process:
    """``orchestrator-state ARGS`` as a subprocess (a test may SIGKILL it): stdout dropped,
    stderr appended to ``log`` (a file, not a pipe: a full pipe would block it)."""
    with log.open("ab") as sink:
        return await asyncio.create_subprocess_exec(
            *CLI,
            *args,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=sink,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


@asynccontextmanager
async def running_worker(worker: W) -> AsyncIterator[W]:
    """A processor or snapshotter started and running in a task; on exit asked to stop,
    awaited (a run that failed fails the test here) and stopped."""
    await worker.start()
    task = asyncio.create_task(worker.run())
    try:
        yield worker
    finally:
        worker.request_stop()
        try:
            await asyncio.wait_for(task, 30)
        finally:
            await worker.stop()


def histories(
    count: int, *, seed: int, tasks: int = 10, prefix: str = "exec"
) -> dict[str, list[Envelope]]:
    """``count`` valid executions (UUID event ids, as the codec requires)."""
    rng = random.Random(seed)
    out: dict[str, list[Envelope]] = {}
    for n in range(count):
        eid = f"{prefix}_{seed}_{n}"
        out[eid] = [
            replace(e, event_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)))
            for e in simulate_execution(eid, rng, tasks=tasks)
        ]
    return out


def mixed(hist: dict[str, list[Envelope]], *, seed: int) -> list[Envelope]:
    return list(interleave(list(hist.values()), random.Random(seed)))


async def produce(log: EventLog, events: list[Envelope], chunk: int = 5000) -> None:
    for i in range(0, len(events), chunk):
        await log.append_batch(events[i : i + chunk])


def event_log(bootstrap: str, topics: TopicsConfig, idempotent: bool) -> EventLog:
    return EventLog(bootstrap, default_codec(), topics=topics, supports_idempotence=idempotent)


async def append_all(kafka: KafkaEndpoint, topics: TopicsConfig, events: list[Envelope]) -> None:
    """Append ``events`` to ``topics`` (in chunks) through a log closed afterwards."""
    async with event_log(kafka.bootstrap_servers, topics, kafka.supports_idempotence) as log:
        await produce(log, events)


async def fetchval(dsn: str, sql: str, *args: Any) -> Any:
    """One value of ``sql`` read on a connection of its own (closed after)."""
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def applied_total(dsn: str, projection: str) -> int:
    try:
        value = await fetchval(
            dsn,
            "SELECT coalesce(sum(next_offset), 0) FROM projection_offsets WHERE projection = $1",
            projection,
        )
    except asyncpg.UndefinedTableError:
        return 0
    return int(value)


async def wait_until(
    check: Callable[[], Awaitable[bool]], seconds: float, what: str, interval: float = 0.1
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not await check():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {seconds}s waiting for {what}")
        await asyncio.sleep(interval)


async def wait_applied(dsn: str, projection: str, total: int, seconds: float, what: str) -> None:
    """Wait until ``projection`` has applied exactly ``total`` records (its next offsets summed)."""

    async def caught_up() -> bool:
        return await applied_total(dsn, projection) == total

    await wait_until(caught_up, seconds, what)


@dataclass
class Mismatch:
    execution_id: str
    what: str


async def compare_with_fold(
    dsn: str,
    log_by_execution: dict[str, list[Envelope]],
    settings: ProjectionSettings,
    *,
    exhaustive: bool = True,
) -> list[Mismatch]:
    """Every execution's rows against the pure fold of its events as the log holds them
    (duplicates included): state, last_sequence, archive counts and verdicts.
    ``exhaustive``: the tables hold no other execution."""
    t = settings.tables
    conn = await asyncpg.connect(dsn)
    try:
        pipelines = {
            r["execution_id"]: r for r in await conn.fetch(f"SELECT * FROM {t.pipeline_states}")
        }
        tasks: dict[str, list[asyncpg.Record]] = defaultdict(list)
        for r in await conn.fetch(f"SELECT * FROM {t.task_states}"):
            tasks[r["execution_id"]].append(r)
        checkpoints: dict[str, list[asyncpg.Record]] = defaultdict(list)
        for r in await conn.fetch(f"SELECT * FROM {t.checkpoints}"):
            checkpoints[r["execution_id"]].append(r)
        archive: dict[str, list[tuple[str, int]]] = defaultdict(list)
        for r in await conn.fetch(
            f"SELECT execution_id, outcome, sequence FROM {t.execution_events}"
            ' ORDER BY partition, "offset"'
        ):
            archive[r["execution_id"]].append((r["outcome"], r["sequence"]))
    finally:
        await conn.close()
    out: list[Mismatch] = []
    if exhaustive and set(pipelines) != set(log_by_execution):
        out.append(Mismatch("*", f"executions {len(pipelines)} != {len(log_by_execution)}"))
    for eid, events in log_by_execution.items():
        row = pipelines.get(eid)
        if row is None:
            out.append(Mismatch(eid, "no pipeline row"))
            continue
        expected = fold(events)
        assert expected is not None
        listed = rm.live_checkpoints(checkpoints[eid])
        if rm.execution_from_rows(row, tasks[eid], listed) != expected:
            out.append(Mismatch(eid, "state differs from the fold"))
        if row["last_sequence"] != expected.last_sequence:
            out.append(Mismatch(eid, "last_sequence"))
        if row["event_count"] != len(events):
            out.append(Mismatch(eid, f"event_count {row['event_count']} != {len(events)}"))
        verdicts = []
        state = None
        for e in events:
            result = step(state, e)
            state = result.state
            verdicts.append((result.outcome.value, e.sequence))
        if archive[eid] != verdicts:
            out.append(Mismatch(eid, f"archive {len(archive[eid])} rows != log {len(events)}"))
    return out


def by_execution(events: Iterable[Envelope]) -> dict[str, list[Envelope]]:
    out: dict[str, list[Envelope]] = defaultdict(list)
    for e in events:
        assert e.execution_id is not None
        out[e.execution_id].append(e)
    return dict(out)


def applied_count(events: list[Envelope]) -> int:
    state = None
    n = 0
    for e in events:
        result = step(state, e)
        state = result.state
        n += result.outcome is Outcome.APPLIED
    return n
