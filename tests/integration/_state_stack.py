"""A whole write/read stack for one test: fresh database and topics, the projection
processor running in-process, and a ``StateRuntime`` wired to them.

Nothing is mocked: events go to the session's Kafka, the processor folds them into
the session's PostgreSQL, and writers wait on its committed offsets.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
from _databases import fresh_database

from orchestrator.commands import WriterSettings
from orchestrator.events.codec import default_codec
from orchestrator.events.envelope import Envelope, Position
from orchestrator.events.log import EventLog
from orchestrator.events.topics import TopicsConfig, TopicSpec, ensure_topics
from orchestrator.events.userdata import BlobStore
from orchestrator.projections.processor import Projector, prepare
from orchestrator.projections.settings import ProjectionSettings
from orchestrator.state import StateRuntime, StateSettings


@dataclass
class Stack:
    dsn: str
    kafka: Any
    topics: TopicsConfig
    projection: ProjectionSettings
    pool: asyncpg.Pool
    log: EventLog
    runtime: StateRuntime
    processor: asyncio.Task[None]

    def new_runtime(self, node_id: str, **writer: Any) -> StateRuntime:
        """Another process's runtime (own node id) on the same pool, log and tables."""
        settings = StateSettings(
            node_id=node_id, projection=self.projection, writer=WriterSettings(**writer)
        )
        return StateRuntime(
            pool=self.pool, log=self.log, blob_store=self.runtime.blob_store, settings=settings
        )

    async def read_partition(self, position: Position) -> list[tuple[Position, Envelope]]:
        """Every event of ``position``'s partition, as the log holds it."""
        return [item async for item in self.log.read_range(position.topic, position.partition)]

    async def end_offsets(self) -> dict[str, dict[int, int]]:
        """End offsets of both topics (to prove that nothing was written)."""
        return {
            spec.name: await self.log.end_offsets(spec.name)
            for spec in (self.topics.pipeline, self.topics.shared)
        }


@contextlib.asynccontextmanager
async def state_stack(
    kafka: Any,
    postgres: str,
    *,
    blob_store: BlobStore | None = None,
    node_id: str = "node-a",
    **writer: Any,
) -> AsyncIterator[Stack]:
    """The stack, torn down (processor stopped, database dropped) at the end."""
    prefix = f"test-{uuid.uuid4().hex[:10]}."
    topics = TopicsConfig(
        pipeline=TopicSpec(name=prefix + "pipeline.events", partitions=2),
        shared=TopicSpec(name=prefix + "shared.events", partitions=2),
    )
    projection = ProjectionSettings(
        name=f"read_models_{uuid.uuid4().hex[:8]}",
        pipeline_topic=topics.pipeline.name,
        shared_topic=topics.shared.name,
        poll_timeout_ms=20,
    )
    async with fresh_database(postgres, "state") as dsn:
        await ensure_topics(kafka.bootstrap_servers, topics.specs())
        await prepare(projection, dsn, kafka.bootstrap_servers)
        projector = Projector(
            projection,
            dsn,
            kafka.bootstrap_servers,
            supports_idempotence=kafka.supports_idempotence,
        )
        pool = await asyncpg.create_pool(dsn, min_size=1, max_size=10)
        log = EventLog(
            kafka.bootstrap_servers,
            default_codec(),
            topics=topics,
            supports_idempotence=kafka.supports_idempotence,
        )
        try:
            async with projector, log:
                processor = asyncio.create_task(projector.run(), name="projector")
                settings = StateSettings(
                    node_id=node_id, projection=projection, writer=WriterSettings(**writer)
                )
                runtime = StateRuntime(pool=pool, log=log, blob_store=blob_store, settings=settings)
                try:
                    yield Stack(dsn, kafka, topics, projection, pool, log, runtime, processor)
                finally:
                    await runtime.close()
                    projector.request_stop()
                    await processor  # a processor error fails the test here
        finally:
            await pool.close()
