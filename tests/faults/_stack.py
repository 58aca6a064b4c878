"""A write/read stack on a fault test's own servers, and a load that records what
was acknowledged.

The processor runs in-process as a task; if it exits, the test sees it
(``Stack.processor.done()``). The writers' log is wrapped so that every event the
broker acknowledged is remembered by ``event_id``: the verifier checks those.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import asyncpg
from _verifier import verify_eventually

from orchestrator.commands import (
    CreateExecution,
    SaveCheckpoint,
    StartValidation,
    SucceedValidation,
    WriterSettings,
)
from orchestrator.events.codec import default_codec
from orchestrator.events.envelope import Envelope, Position
from orchestrator.events.errors import OrchestratorStateError
from orchestrator.events.log import EventLog, ProducerSettings
from orchestrator.events.topics import TopicsConfig, TopicSpec, ensure_topics
from orchestrator.projections.errors import POSTGRES_OUTAGE
from orchestrator.projections.processor import Projector, prepare
from orchestrator.projections.settings import ProjectionSettings
from orchestrator.state import StateRuntime, StateSettings

logger = logging.getLogger(__name__)


class RecordingLog:
    """An ``EventLog`` that remembers the ``event_id`` of every acknowledged event."""

    def __init__(self, log: EventLog) -> None:
        self._log = log
        self.acknowledged: list[str] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)

    async def append_batch(
        self, envelopes: Sequence[Envelope], topic: str | None = None
    ) -> list[Position]:
        positions = await self._log.append_batch(envelopes, topic)
        self.acknowledged.extend(str(e.event_id) for e in envelopes)
        return positions

    async def append(self, envelope: Envelope, topic: str | None = None) -> Position:
        return (await self.append_batch([envelope], topic))[0]


@dataclass
class Stack:
    bootstrap: str
    dsn: str
    topics: TopicsConfig
    projection: ProjectionSettings
    pool: asyncpg.Pool
    log: RecordingLog
    runtime: StateRuntime
    projector: Projector
    processor: asyncio.Task[None]


@contextlib.asynccontextmanager
async def fault_stack(
    bootstrap: str,
    dsn: str,
    *,
    delivery_timeout_ms: int = 5000,
    replication: int = 1,
    min_insync: int = 1,
    **writer: Any,
) -> AsyncIterator[Stack]:
    """Topics (replication as given), migrations, the processor and a runtime."""
    prefix = f"faults-{uuid.uuid4().hex[:8]}."
    durability: dict[str, Any] = {
        "replication_factor": replication,
        "min_insync_replicas": min_insync,
    }
    topics = TopicsConfig(
        pipeline=TopicSpec(name=prefix + "pipeline.events", partitions=2, **durability),
        shared=TopicSpec(name=prefix + "shared.events", partitions=1, **durability),
    )
    projection = ProjectionSettings(
        name=f"read_models_{uuid.uuid4().hex[:8]}",
        pipeline_topic=topics.pipeline.name,
        shared_topic=topics.shared.name,
        poll_timeout_ms=50,
    )
    await ensure_topics(bootstrap, topics.specs())
    await prepare(projection, dsn, bootstrap)
    projector = Projector(projection, dsn, bootstrap)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=10)
    event_log = EventLog(
        bootstrap,
        default_codec(),
        ProducerSettings(delivery_timeout_ms=delivery_timeout_ms),
        topics=topics,
    )
    log = RecordingLog(event_log)
    try:
        async with projector, event_log:
            processor = asyncio.create_task(projector.run(), name="projector")
            settings = StateSettings(
                node_id="fault-node", projection=projection, writer=WriterSettings(**writer)
            )
            runtime = StateRuntime(pool=pool, log=log, settings=settings)  # type: ignore[arg-type]
            try:
                yield Stack(
                    bootstrap, dsn, topics, projection, pool, log, runtime, projector, processor
                )
            finally:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(runtime.close(), 30)
                projector.request_stop()
                await asyncio.wait_for(processor, 60)  # a processor error fails the test here
    finally:
        await pool.close()


async def until(condition: Callable[[], bool], within: float = 120.0) -> None:
    """Poll ``condition`` (a counter) until it holds; fail after ``within`` seconds."""
    async with asyncio.timeout(within):
        while not condition():  # noqa: ASYNC110 - polling a counter
            await asyncio.sleep(0.1)


@dataclass
class Load:
    """Executions written concurrently until stopped; failures counted, not fatal."""

    stack: Stack
    executions: int = 4
    acked: int = 0
    failures: list[str] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start(self) -> None:
        for n in range(self.executions):
            self._tasks.append(asyncio.create_task(self._write(n), name=f"load {n}"))

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def stop_and_verify(self) -> None:
        """Stop writing, then check the outcome of a fault: the processor still runs and
        the read model equals the fold of the log, holding every acknowledged event
        (the independent verifier's verdict)."""
        await self.stop()
        stack = self.stack
        assert not stack.processor.done(), "the processor exited during the outage"
        verdict = await verify_eventually(
            stack.bootstrap, stack.topics.pipeline.name, stack.dsn, stack.log.acknowledged
        )
        print(
            f"verifier: {verdict.records} records, {verdict.executions} executions, "
            f"{verdict.applied} applied, {len(self.failures)} failed commands"
        )
        verdict.check()

    async def _write(self, n: int) -> None:
        runtime = self.stack.runtime
        eid = f"exec-{n}-{uuid.uuid4().hex[:6]}"
        writer = None
        while writer is None and not self._stop.is_set():
            try:
                writer = await runtime.create_execution(
                    CreateExecution(execution_id=eid, pipeline_id="faults", tasks=("t",))
                )
                await writer.execute_many([StartValidation(), SucceedValidation()])
            except (OrchestratorStateError, *POSTGRES_OUTAGE) as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
                writer = None
                eid = f"exec-{n}-{uuid.uuid4().hex[:6]}"
                await asyncio.sleep(0.5)
        i = 0
        while not self._stop.is_set():
            i += 1
            try:
                await writer.execute(SaveCheckpoint(name=f"ck{i}", data={"i": i}))  # type: ignore[union-attr]
                self.acked += 1
            except (OrchestratorStateError, *POSTGRES_OUTAGE) as exc:
                self.failures.append(f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(0.5)
                if writer.lost is not None:  # type: ignore[union-attr]
                    writer = await self._reopen(eid, writer)
            await asyncio.sleep(0.01)

    async def _reopen(self, eid: str, writer: Any) -> Any:
        """The lease was lost (PostgreSQL away for longer than its ttl): take it again."""
        with contextlib.suppress(Exception):
            await writer.close()
        while not self._stop.is_set():
            try:
                return await self.stack.runtime.open_execution(eid, wait=5.0)
            except (OrchestratorStateError, *POSTGRES_OUTAGE) as exc:
                self.failures.append(f"reopen: {type(exc).__name__}: {exc}")
                await asyncio.sleep(0.5)
        return writer
