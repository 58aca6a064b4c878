"""The processor runtime: a consumer-group member folding the log into PostgreSQL.

Each member of the group named after the projection owns some partitions. On
assignment it seeks each to the offset stored in ``projection_offsets`` (design §4);
it consumes batches, folds them, and writes the read-model rows **and** the next
offsets in one PostgreSQL transaction, so a kill at any instant loses nothing and
applies nothing twice. Kafka's committed offsets are written too, for lag metrics
only.

The group plumbing (assignment, seek, batches, rebalance callbacks, outages, leave)
is the one member of ``events.group``. Revocation waits for the batch in hand to
commit, and every write is fenced (see ``projections.offsets``), so a member that
lost a partition without hearing about it cannot write it either. SIGTERM finishes
the batch in hand and leaves the group; an unexpected error is logged once, with
where it happened, and :func:`run_processor` raises it so the process exits non-zero.
"""

from __future__ import annotations

import asyncio
import gc
import logging
from dataclasses import replace
from typing import Any

import asyncpg

from orchestrator.events import (
    PLAINTEXT,
    ConsumerSettings,
    EventCodecLike,
    EventLog,
    GroupMember,
    GroupProcess,
    KafkaSecurity,
    LogError,
    MemberSettings,
    Outage,
    ProducerSettings,
    RawRecord,
    TopicPartition,
    TopicsConfig,
    TopicSpec,
    codec_for,
    ensure_topics,
    feed_for,
    quiet_client_logs,
    ride_out,
    start_projection,
    stop_on_signals,
)
from orchestrator.projections._collector import CollectorSchedule
from orchestrator.projections._double_buffer import BatchPipeline
from orchestrator.projections._engine import BatchEngine
from orchestrator.projections.deadletters import DeadLetterSink
from orchestrator.projections.errors import ProcessorFailed, is_outage
from orchestrator.projections.migrator import TableNames, migrate
from orchestrator.projections.pools import close_pool, open_pool
from orchestrator.projections.settings import ProjectionSettings

logger = logging.getLogger(__name__)
TP = tuple[str, int]


async def prepare(
    settings: ProjectionSettings,
    dsn: str,
    bootstrap: str,
    topics: TopicsConfig | None = None,
    *,
    security: KafkaSecurity = PLAINTEXT,
) -> None:
    """Apply the migrations and create or verify ``topics`` (events and DLQs); without
    ``topics``, the DLQ topics of the projection's topics (idempotent). A consumer reads
    whatever partition count a topic has: a count other than declared is reported."""
    conn = await asyncpg.connect(dsn)
    try:
        t = settings.tables
        await migrate(conn, TableNames(t.pipeline_states, t.task_states, t.checkpoints))
    finally:
        await conn.close()
    if topics is not None:  # a consumer: another partition count is reported, not refused
        await ensure_topics(bootstrap, topics.specs(), strict=False, security=security)
        return
    layout = TopicsConfig(dlq_partitions=settings.dlq_partitions)
    dlqs = [layout.dlq(TopicSpec(name=topic)) for topic in settings.topics]
    await ensure_topics(bootstrap, dlqs, security=security)


class Projector(GroupProcess):
    """One consumer-group member of a projection; ``async with`` it and ``run()`` it.

    The group plumbing is ``events.group.GroupMember``'s; this says what a batch is
    (staged ahead and written by a :class:`BatchPipeline`) and what a claim is (the
    fenced offset rows of ``projections.offsets``)."""

    def __init__(
        self,
        settings: ProjectionSettings,
        dsn: str,
        bootstrap: str,
        *,
        codec: EventCodecLike | None = None,
        consumer_settings: ConsumerSettings | None = None,
        producer_settings: ProducerSettings | None = None,
        supports_idempotence: bool | None = None,
        pool: asyncpg.Pool | None = None,
        security: KafkaSecurity | None = None,
    ) -> None:
        """``pool``: the process's pool, borrowed (not closed); else one of its own.
        ``security``: SASL / TLS of the consumer and the DLQ producer (replaces theirs)."""
        self.settings = settings
        self._dsn = dsn
        self._borrowed_pool = pool
        self._bootstrap = bootstrap
        self._codec = codec or codec_for(settings.limits)
        consumer = consumer_settings or member_consumer_settings(
            settings.client_id, settings.session_timeout_ms
        )
        self._producer_settings = producer_settings or ProducerSettings(
            client_id=f"{settings.client_id}-dlq", compression_type=None
        )
        if security is not None:
            consumer = replace(consumer, security=security)
            self._producer_settings = replace(self._producer_settings, security=security)
        label = f"projection {settings.name}"
        member = MemberSettings.of(settings, settings.name, settings.topics, consumer, label)
        self.member = GroupMember(bootstrap, member, self)
        self._supports_idempotence = supports_idempotence
        self._pool: asyncpg.Pool | None = None
        self._dlq: EventLog | None = None
        self._engine: BatchEngine | None = None
        self._pipeline: BatchPipeline | None = None
        self._collector = CollectorSchedule()
        self._counted = (0, 0)  # batches and records of the pipelines before the last reset

    async def start(self) -> None:
        """Connect to PostgreSQL and Kafka and subscribe; the group is joined by ``run``.
        A failure closes whatever was opened."""
        try:
            self._pool = self._borrowed_pool or await open_pool(self._dsn, max_size=4)
            self._dlq = EventLog(
                self._bootstrap,
                self._codec,
                self._producer_settings,
                supports_idempotence=self._supports_idempotence,
            )
            await self._dlq.start()
            self._engine = BatchEngine(
                self.settings, self._pool, self._codec, DeadLetterSink(self.settings, self._dlq)
            )
            await self.member.start()
            start_projection(self.settings.name)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Leave the group cleanly and close everything; safe to call twice."""
        dlq, self._dlq = self._dlq, None
        pool, self._pool = self._pool, None
        try:
            await self.member.stop()
        finally:
            try:
                if dlq is not None:
                    await dlq.stop()
            finally:
                if pool is not None and pool is not self._borrowed_pool:
                    await close_pool(pool)

    async def run(self) -> None:
        """Consume, fold and write batches until ``request_stop`` (see
        ``events.group``: outages of PostgreSQL or Kafka are ridden out, and the loop
        resumes from the offsets stored with the read model)."""
        if self._engine is None:
            raise RuntimeError("Projector is not started: call start() or use async with")
        try:
            await self.member.run()
        finally:
            self._collector.resume()
        logger.info("projection %s: stopping after %s batch(es)", self.settings.name, self.batches)

    @property
    def positions(self) -> dict[tuple[str, int], int]:
        """Next offsets committed to PostgreSQL, per owned partition."""
        return {} if self._engine is None else self._engine.positions

    @property
    def batches(self) -> int:
        """Batches committed by ``run`` so far."""
        return self._counted[0] + (0 if self._pipeline is None else self._pipeline.batches)

    @property
    def records(self) -> int:
        """Records committed by ``run`` so far."""
        return self._counted[1] + (0 if self._pipeline is None else self._pipeline.records)

    # --- what the member asks (events.group.BatchHandler) --------------------------

    dependencies = "PostgreSQL or Kafka"

    is_transient = staticmethod(is_outage)

    async def claim(self, tps: frozenset[TopicPartition]) -> dict[TopicPartition, int]:
        """Read (or create) the partitions' offset rows; seek each to its offset."""
        if self._engine is None:
            return {}
        offsets = await self._engine.claim((tp.topic, tp.partition) for tp in tps)
        return {TopicPartition(t, p): o for (t, p), o in offsets.items()}

    async def release(self, tps: frozenset[TopicPartition]) -> None:
        if self._engine is not None:
            self._engine.release((tp.topic, tp.partition) for tp in tps)

    async def handle(self, records: list[RawRecord]) -> None:
        """Stage this batch ahead of the one being written (see ``_pipeline``)."""
        if self._pipeline is None:
            assert self._engine is not None
            self._pipeline = BatchPipeline(self._engine, self.member)
        with self._collector.batch():  # see CollectorSchedule
            await self._pipeline.advance(records)

    async def settle(self) -> None:
        if self._pipeline is not None:
            await self._pipeline.settle()

    async def reset(self) -> None:
        """After a failure: let the write in hand finish quietly; a new pipeline follows."""
        self._collector.resume()
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is not None:
            self._counted = (
                self._counted[0] + pipeline.batches,
                self._counted[1] + pipeline.records,
            )
            await pipeline.abandon()


def member_consumer_settings(client_id: str, session_timeout_ms: int) -> ConsumerSettings:
    """The consumer of a processor: short fetch waits (latency), the group's session."""
    return ConsumerSettings(
        client_id=client_id,
        fetch_max_wait_ms=50,
        session_timeout_ms=session_timeout_ms,
        heartbeat_interval_ms=max(100, session_timeout_ms // 3),
    )


async def run_processor(
    settings: ProjectionSettings,
    dsn: str,
    bootstrap: str,
    *,
    handle_signals: bool = True,
    topics: TopicsConfig | None = None,
    security: KafkaSecurity = PLAINTEXT,
    **options: Any,
) -> None:
    """Migrate and create or verify the topics (:func:`prepare`), then run one processor
    until SIGTERM/SIGINT (a clean stop) or an unexpected error, which is logged once
    with its context and raised."""
    projector = Projector(settings, dsn, bootstrap, security=security, **options)
    quiet_client_logs()
    with stop_on_signals(projector.request_stop, handle_signals):
        try:
            started = Outage(f"projection {settings.name}: starting, PostgreSQL or Kafka", logger)

            async def start() -> None:
                await prepare(settings, dsn, bootstrap, topics, security=security)
                await projector.start()

            await ride_out(start, outage=started, transient=is_outage)
            gc.freeze()  # what start-up made lives for ever: no collection walks it again
            feed = (
                None
                if topics is None
                else feed_for(
                    bootstrap,
                    topics,
                    codec_for(settings.limits),
                    name=settings.name,
                    security=security,
                )
            )
            stop_feed = asyncio.Event()
            feeding = None if feed is None else asyncio.create_task(feed.run(stop_feed))
            try:
                await projector.run()
            finally:
                stop_feed.set()
                if feeding is not None:
                    await feeding
                await projector.stop()
        except ProcessorFailed as exc:
            logger.error("%s", exc, exc_info=exc.__cause__)
            raise
        except (OSError, LogError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            # The environment, not a bug: one line (no traceback) naming what failed.
            logger.error(
                "projection %s stopped: %s: %s (partitions %s)",
                settings.name,
                type(exc).__name__,
                exc,
                projector.positions,
            )
            raise
        except Exception as exc:
            logger.error(
                "projection %s failed (partitions %s): %s",
                settings.name,
                projector.positions,
                exc,
                exc_info=True,
            )
            raise
