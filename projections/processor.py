"""The processor runtime: a consumer-group member folding the log into PostgreSQL.

Each member of the group named after the projection owns some partitions. On
assignment it seeks each to the offset stored in ``projection_offsets`` (design §4);
it consumes batches, folds them, and writes the read-model rows **and** the next
offsets in one PostgreSQL transaction, so a kill at any instant loses nothing and
applies nothing twice. Kafka's committed offsets are written too, for lag metrics
only.

Revocation waits for the batch in hand to commit (the batch lock), and every write is
fenced (see ``projections.store``), so a member that lost a partition without hearing
about it cannot write it either. SIGTERM finishes the batch in hand and leaves the
group; an unexpected error is logged once, with where it happened, and
:func:`run_processor` raises it so the process exits non-zero.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from dataclasses import replace
from typing import Any

import asyncpg

from orchestrator.events import metrics
from orchestrator.events.codec import codec_for
from orchestrator.events.consumer import ConsumerSettings, EventConsumer, TopicPartition
from orchestrator.events.errors import LogError
from orchestrator.events.log import EventCodecLike, EventLog, ProducerSettings
from orchestrator.events.outage import Outage, quiet_client_logs, ride_out
from orchestrator.events.security import PLAINTEXT, KafkaSecurity
from orchestrator.events.task_feed import feed_for
from orchestrator.events.topics import TopicsConfig, TopicSpec, ensure_topics
from orchestrator.projections._collector import CollectorSchedule
from orchestrator.projections._engine import BatchEngine
from orchestrator.projections._pipeline import BatchPipeline
from orchestrator.projections.deadletters import DeadLetterSink
from orchestrator.projections.errors import ProcessorFailed, is_outage
from orchestrator.projections.migrate import TableNames, migrate
from orchestrator.projections.settings import ProjectionSettings

logger = logging.getLogger(__name__)
TP = tuple[str, int]


async def create_pool(dsn: str, *, max_size: int = 4) -> asyncpg.Pool:
    """The one asyncpg pool of a processor process."""
    pool: asyncpg.Pool = await asyncpg.create_pool(dsn, min_size=1, max_size=max_size)
    return pool


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


class Projector:
    """One consumer-group member of a projection; ``async with`` it and ``run()`` it."""

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
        self._consumer_settings = consumer_settings or ConsumerSettings(
            client_id=settings.client_id,
            fetch_max_wait_ms=50,
            session_timeout_ms=settings.session_timeout_ms,
            heartbeat_interval_ms=max(100, settings.session_timeout_ms // 3),
        )
        self._producer_settings = producer_settings or ProducerSettings(
            client_id=f"{settings.client_id}-dlq", compression_type=None
        )
        if security is not None:
            self._consumer_settings = replace(self._consumer_settings, security=security)
            self._producer_settings = replace(self._producer_settings, security=security)
        self._supports_idempotence = supports_idempotence
        self._pool: asyncpg.Pool | None = None
        self._consumer: EventConsumer | None = None
        self._dlq: EventLog | None = None
        self._engine: BatchEngine | None = None
        self._lock = asyncio.Lock()
        self._pipeline: BatchPipeline | None = None
        self._failure: Exception | None = None
        self._counted = (0, 0)  # batches and records of the loops before the last outage
        self._stopping = asyncio.Event()
        self._last_kafka_commit = 0.0

    async def start(self) -> None:
        """Connect to PostgreSQL and Kafka and subscribe; the group is joined by ``run``.
        A failure closes whatever was opened."""
        try:
            self._pool = self._borrowed_pool or await create_pool(self._dsn)
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
            self._consumer = EventConsumer(
                self._bootstrap, self._consumer_settings, group_id=self.settings.name
            )
            await self._consumer.start()
            self._consumer.subscribe(self.settings.topics, listener=self)
            metrics.start_projection(self.settings.name)
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        """Leave the group cleanly and close everything; safe to call twice."""
        consumer, self._consumer = self._consumer, None
        dlq, self._dlq = self._dlq, None
        pool, self._pool = self._pool, None
        try:
            if consumer is not None:
                await consumer.stop()
        finally:
            try:
                if dlq is not None:
                    await dlq.stop()
            finally:
                if pool is not None and pool is not self._borrowed_pool:
                    await pool.close()

    async def __aenter__(self) -> Projector:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    def request_stop(self) -> None:
        """Finish the batch in hand, then return from ``run`` (what SIGTERM does)."""
        self._stopping.set()

    @property
    def positions(self) -> dict[tuple[str, int], int]:
        """Next offsets committed to PostgreSQL, per owned partition."""
        return {} if self._engine is None else self._engine.positions

    # --- the rebalance listener ----------------------------------------------------

    async def on_partitions_revoked(self, revoked: frozenset[TopicPartition]) -> None:
        """Wait for the batch in hand to commit, then forget the partitions."""
        async with self._lock:
            await self._settle_in_callback()
            if self._engine is not None:
                self._engine.release((tp.topic, tp.partition) for tp in revoked)
        metrics.forget_consumer_lag(self.settings.name, ((t.topic, t.partition) for t in revoked))
        if revoked:
            logger.info("projection %s: revoked %s", self.settings.name, _names(revoked))

    async def on_partitions_assigned(self, assigned: frozenset[TopicPartition]) -> None:
        """Seek each new partition to the offset stored with the read model."""
        offsets: dict[tuple[str, int], int] = {}
        async with self._lock:
            await self._settle_in_callback()
            if self._engine is None or self._consumer is None:
                return
            try:
                offsets = await self._engine.claim((tp.topic, tp.partition) for tp in assigned)
            except Exception as exc:
                # aiokafka drops what a callback raises, and would keep the partitions
                # assigned but never claimed (a processor that applies nothing). So the
                # loop gets every failure: an outage is ridden out and every assigned
                # partition claimed when PostgreSQL is back; anything else stops it.
                self._failure = exc
                return
            for (topic, partition), offset in offsets.items():
                self._consumer.seek(TopicPartition(topic, partition), offset)
        if assigned:
            logger.info(
                "projection %s: assigned %s",
                self.settings.name,
                ", ".join(f"{t}[{p}]@{o}" for (t, p), o in sorted(offsets.items())),
            )

    # --- the loop ------------------------------------------------------------------

    async def run(self) -> None:
        """Consume, fold and write batches until ``request_stop``; errors propagate,
        except outages of PostgreSQL or Kafka: those are ridden out with bounded
        backoff (logged once when they start and once when they end), and the loop
        resumes from the offsets stored with the read model, so a batch whose commit
        was lost with the connection is neither lost nor applied twice."""
        if self._consumer is None or self._engine is None:
            raise RuntimeError("Projector is not started: call start() or use async with")
        outage = Outage(f"projection {self.settings.name}: PostgreSQL or Kafka", logger)
        while True:
            try:
                if outage.ongoing:
                    await self._resume_from_stored()
                    outage.recovered()
                await self._consume()
                return
            except Exception as exc:
                if not is_outage(exc) or self._stopping.is_set():
                    raise
                delay = outage.failed(exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), delay)

    async def _resume_from_stored(self) -> None:
        """After an outage: forget what was in flight, seek every assigned partition to
        the offset stored with the read model (the truth, whatever the lost commit did)."""
        consumer, engine = self._consumer, self._engine
        assert consumer is not None and engine is not None
        async with self._lock:
            self._failure = None
            offsets = await engine.claim((tp.topic, tp.partition) for tp in consumer.assignment())
            for (topic, partition), offset in offsets.items():
                consumer.seek(TopicPartition(topic, partition), offset)

    async def _consume(self) -> None:
        consumer, engine = self._consumer, self._engine
        assert consumer is not None and engine is not None
        s = self.settings
        if self._pipeline is not None:
            self._counted = (self.batches, self.records)
        pipeline = self._pipeline = BatchPipeline(engine, consumer)
        collector = CollectorSchedule()
        try:
            while not self._stopping.is_set():
                with collector.batch():  # see CollectorSchedule
                    records = await consumer.getmany(
                        max_records=s.batch_size, timeout_ms=s.poll_timeout_ms
                    )
                    async with self._lock:
                        if self._failure is not None:
                            raise self._failure
                        await pipeline.advance(records)
                await self._commit_for_lag()
            async with self._lock:
                await pipeline.settle()
            if self._failure is not None:
                raise self._failure
        finally:
            collector.resume()
            await pipeline.abandon()
        logger.info("projection %s: stopping after %s batch(es)", s.name, self.batches)

    @property
    def batches(self) -> int:
        """Batches committed by ``run`` so far."""
        return self._counted[0] + (0 if self._pipeline is None else self._pipeline.batches)

    @property
    def records(self) -> int:
        """Records committed by ``run`` so far."""
        return self._counted[1] + (0 if self._pipeline is None else self._pipeline.records)

    async def _settle_in_callback(self) -> None:
        """Wait for the batch being written, from a rebalance callback: aiokafka logs
        and drops what a callback raises, so a failed write is kept for the loop to
        raise instead (it then writes nothing more)."""
        if self._pipeline is None:
            return
        try:
            await self._pipeline.settle()
        except Exception as exc:
            self._failure = exc
            if not is_outage(exc):  # an outage is ridden out by the loop instead
                self._stopping.set()

    async def _commit_for_lag(self) -> None:
        """Kafka offsets, for lag metrics only (at most every ``kafka_commit_interval_s``)."""
        now = time.monotonic()
        if now - self._last_kafka_commit < self.settings.kafka_commit_interval_s:
            return
        self._last_kafka_commit = now
        consumer, engine = self._consumer, self._engine
        if consumer is None or engine is None:
            return
        positions = engine.positions
        if not positions:
            return
        metrics.record_consumer_lag(self.settings.name, _lags(consumer, positions))
        try:
            await consumer.commit({TopicPartition(t, p): o for (t, p), o in positions.items()})
        except LogError as exc:
            # Lag metrics only: a commit refused during a rebalance is retried next time.
            logger.debug("projection %s: lag commit skipped: %s", self.settings.name, exc)


def _lags(consumer: EventConsumer, positions: dict[tuple[str, int], int]) -> dict[TP, int]:
    """Records between each committed position and the log end the last fetch saw."""
    lags: dict[TP, int] = {}
    for (topic, partition), offset in positions.items():
        end = consumer.highwater(TopicPartition(topic, partition))
        if end is not None:
            lags[(topic, partition)] = end - offset
    return lags


def _names(tps: frozenset[TopicPartition]) -> str:
    return ", ".join(f"{tp.topic}[{tp.partition}]" for tp in sorted(tps))


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
    loop = asyncio.get_running_loop()
    if handle_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, projector.request_stop)
    try:
        started = Outage(f"projection {settings.name}: starting, PostgreSQL or Kafka", logger)

        async def start() -> None:
            await prepare(settings, dsn, bootstrap, topics, security=security)
            await projector.start()

        await ride_out(start, outage=started, transient=is_outage)
        feed = (
            None
            if topics is None
            else feed_for(
                bootstrap, topics, codec_for(settings.limits), name=settings.name, security=security
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
    finally:
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(ValueError, RuntimeError):
                    loop.remove_signal_handler(sig)
