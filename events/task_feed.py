"""The task-events feed: each task event of the pipeline topic, copied to the seed's
``event_store.topics.task_events`` topic exactly once.

Why a feed and not a second write: an execution's events stay in one stream with
one total order (the fold reads the pipeline topic only), so a writer never has to
keep two topics in step. Readers that want task events alone (dashboards, billing,
audits) read this topic instead. It is derived by a consume-transform-produce loop:
one Kafka transaction per batch carries both the copied records and the feed's
consumer-group offsets (``send_offsets_to_transaction``), so a crash at any point
neither loses nor repeats a record for ``read_committed`` readers. Here, unlike
the read models, the offsets live in Kafka because the output does too.

Records are copied byte for byte (the same Avro envelope, key and headers: one
encode), onto the partition with the same number, so an execution's task events
keep their order. A record that does not decode is left out (the projection's DLQ
reports it); the feed never stops on one.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass

import aiokafka
from aiokafka.structs import OffsetAndMetadata
from aiokafka.structs import TopicPartition as KafkaTopicPartition

from orchestrator.events._kafka import translated
from orchestrator.events.catalogue import TASK_EVENT_TYPES
from orchestrator.events.consumer import (
    ConsumerSettings,
    Decoder,
    EventConsumer,
    RawRecord,
    TopicPartition,
)
from orchestrator.events.errors import DecodeError
from orchestrator.events.outage import Outage
from orchestrator.events.security import PLAINTEXT, KafkaSecurity
from orchestrator.events.topics import TopicsConfig

log = logging.getLogger(__name__)

TASK_EVENTS = TASK_EVENT_TYPES
"""The event types the feed carries (the catalogue's task transitions)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskFeedSettings:
    """Where the feed reads and writes; ``group_id`` names its offsets in Kafka."""

    source_topic: str
    feed_topic: str
    group_id: str
    security: KafkaSecurity = PLAINTEXT
    max_records: int = 500
    transaction_timeout_ms: int = 10_000
    """How long a crashed feed's open transaction can hold back the feed's readers."""


class TaskFeed:
    """Copies task events from ``source_topic`` to ``feed_topic``; run it with :meth:`run`."""

    def __init__(self, bootstrap_servers: str, codec: Decoder, settings: TaskFeedSettings) -> None:
        self._bootstrap = bootstrap_servers
        self._codec = codec
        self.settings = settings
        self.copied = 0
        """Task events copied by this process (committed transactions only)."""

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Copy until ``stop`` is set (or for ever); Kafka outages are ridden out."""
        s = self.settings
        consumer = EventConsumer(
            self._bootstrap,
            ConsumerSettings(
                client_id="orchestrator-task-feed",
                isolation_level="read_committed",
                security=s.security,
            ),
            group_id=s.group_id,
        )
        producer = aiokafka.AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            client_id="orchestrator-task-feed",
            # One id per run: a restarted feed fences its predecessor's open transaction.
            transactional_id=f"{s.group_id}-{uuid.uuid4().hex[:12]}",
            enable_idempotence=True,
            acks="all",
            transaction_timeout_ms=s.transaction_timeout_ms,
            **s.security.client_kwargs(),
        )
        outage = Outage(f"task feed {s.source_topic} -> {s.feed_topic}: Kafka", log)
        await consumer.start()
        try:
            with translated("starting the task feed's producer"):
                await producer.start()
            consumer.subscribe([s.source_topic])
            while stop is None or not stop.is_set():
                batch: list[RawRecord] = []
                try:
                    batch = await consumer.getmany(max_records=s.max_records, timeout_ms=500)
                    if batch:
                        await self._copy(producer, batch)
                    outage.recovered()
                except Exception as exc:  # ridden out: logged once per outage
                    _rewind(consumer, batch)  # the aborted batch is read again
                    await asyncio.sleep(outage.failed(exc))
        finally:
            with translated("stopping the task feed"):
                await producer.stop()
            await consumer.stop()

    async def _copy(self, producer: aiokafka.AIOKafkaProducer, batch: list[RawRecord]) -> None:
        s = self.settings
        offsets: dict[KafkaTopicPartition, OffsetAndMetadata] = {}
        copied = 0
        async with producer.transaction():
            for record in batch:
                p = record.position
                offsets[KafkaTopicPartition(p.topic, p.partition)] = OffsetAndMetadata(
                    p.offset + 1, ""
                )
                if not self._is_task_event(record):
                    continue
                await producer.send(
                    s.feed_topic,
                    record.value,
                    key=record.key,
                    partition=p.partition,
                    headers=list(record.headers),
                )
                copied += 1
            await producer.send_offsets_to_transaction(offsets, s.group_id)
        self.copied += copied

    def _is_task_event(self, record: RawRecord) -> bool:
        """Whether the record is a task event (an undecodable one is not copied)."""
        try:
            return self._codec.decode(record.value).event_type in TASK_EVENTS
        except DecodeError:
            return False


def _rewind(consumer: EventConsumer, batch: list[RawRecord]) -> None:
    first: dict[TopicPartition, int] = {}
    for record in batch:
        tp = TopicPartition(record.position.topic, record.position.partition)
        first.setdefault(tp, record.position.offset)
    for tp, offset in first.items():
        consumer.seek(tp, offset)


def feed_for(
    bootstrap_servers: str,
    topics: TopicsConfig,
    codec: Decoder,
    *,
    name: str,
    security: KafkaSecurity = PLAINTEXT,
) -> TaskFeed | None:
    """The feed ``topics`` asks for (``None`` without a task-events topic); its offsets
    are the consumer group ``<name>.task-feed``."""
    if topics.tasks is None:
        return None
    settings = TaskFeedSettings(
        source_topic=topics.pipeline.name,
        feed_topic=topics.tasks.name,
        group_id=f"{name}.task-feed",
        security=security,
    )
    return TaskFeed(bootstrap_servers, codec, settings)
