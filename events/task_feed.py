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
from orchestrator.events.consumer import ConsumerSettings, Decoder, RawRecord, TopicPartition
from orchestrator.events.errors import DecodeError
from orchestrator.events.group import BatchHandler, GroupMember, MemberSettings
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


class TaskFeed(BatchHandler):
    """Copies task events from ``source_topic`` to ``feed_topic``; run it with :meth:`run`.

    A member of the one consumer-group machinery (``events.group``) whose offsets
    Kafka holds: a claim seeks nothing (the group's committed offsets are where the
    last transaction left them), and a batch is one transaction."""

    def __init__(self, bootstrap_servers: str, codec: Decoder, settings: TaskFeedSettings) -> None:
        self._bootstrap = bootstrap_servers
        self._codec = codec
        self.settings = settings
        self.copied = 0
        """Task events copied by this process (committed transactions only)."""
        self._producer: aiokafka.AIOKafkaProducer | None = None
        self._member: GroupMember | None = None

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Copy until ``stop`` is set (or for ever); Kafka outages are ridden out."""
        s = self.settings
        consumer = ConsumerSettings(
            client_id="orchestrator-task-feed",
            isolation_level="read_committed",
            security=s.security,
        )
        member = self._member = GroupMember(
            self._bootstrap,
            MemberSettings(
                group_id=s.group_id,
                topics=[s.source_topic],
                consumer=consumer,
                batch_size=s.max_records,
                poll_timeout_ms=500,
                kafka_commit_interval_s=None,  # offsets go with each transaction
                label=f"task feed {s.source_topic} -> {s.feed_topic}",
                lag_metric=False,
            ),
            self,
        )
        producer = self._producer = aiokafka.AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            client_id="orchestrator-task-feed",
            # One id per run: a restarted feed fences its predecessor's open transaction.
            transactional_id=f"{s.group_id}-{uuid.uuid4().hex[:12]}",
            enable_idempotence=True,
            acks="all",
            transaction_timeout_ms=s.transaction_timeout_ms,
            **s.security.client_kwargs(),
        )
        await member.start()
        relay = None if stop is None else asyncio.create_task(_relay(stop, member))
        try:
            with translated("starting the task feed's producer"):
                await producer.start()
            await member.run()
        finally:
            if relay is not None:
                relay.cancel()
            with translated("stopping the task feed"):
                await producer.stop()
            await member.stop()

    def is_transient(self, exc: BaseException) -> bool:
        """A feed never stops on an error: every one is ridden out (and logged once)."""
        return True

    async def claim(self, tps: frozenset[TopicPartition]) -> dict[TopicPartition, int]:
        """Nothing to seek: the group's offsets in Kafka are where the last committed
        transaction left them."""
        return {}

    async def handle(self, records: list[RawRecord]) -> None:
        """Copy one batch in one transaction; if it aborts, the batch is read again."""
        if not records:
            return
        try:
            await self._copy(records)
        except BaseException:
            assert self._member is not None
            for tp, offset in _firsts(records).items():
                self._member.seek(tp, offset)
            raise

    async def _copy(self, batch: list[RawRecord]) -> None:
        s = self.settings
        producer = self._producer
        assert producer is not None
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


async def _relay(stop: asyncio.Event, member: GroupMember) -> None:
    await stop.wait()
    member.request_stop()


def _firsts(batch: list[RawRecord]) -> dict[TopicPartition, int]:
    first: dict[TopicPartition, int] = {}
    for record in batch:
        tp = TopicPartition(record.position.topic, record.position.partition)
        first.setdefault(tp, record.position.offset)
    return first


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
