"""An execution's events read from its partition of the pipeline topic in Kafka.

What the history service falls back to where the archive lacks events (before the
processor archived them, or a replay that must not depend on the read side). A
consumer reads the partition and skips other keys without decoding them; with only
a started ``EventLog`` records are read with ``log.read_range`` and filtered.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import KW_ONLY, dataclass, field
from typing import cast

from aiokafka.partitioner import murmur2

from orchestrator.events.codec import EventCodec, default_codec
from orchestrator.events.consumer import ConsumerSettings, EventConsumer, TopicPartition
from orchestrator.events.envelope import Envelope, Position
from orchestrator.events.errors import DecodeError, LogError
from orchestrator.events.history.archive import ArchivedEvent
from orchestrator.events.log import EventLog, ProducerSettings
from orchestrator.events.security import PLAINTEXT, KafkaSecurity


def reading_log(
    bootstrap_servers: str, codec: EventCodec, security: KafkaSecurity = PLAINTEXT
) -> EventLog:
    """An ``EventLog`` for reading offsets only (it never appends: no idempotence asked)."""
    return EventLog(
        bootstrap_servers,
        codec,
        ProducerSettings(
            enable_idempotence=False, client_id="orchestrator-history", security=security
        ),
        supports_idempotence=False,
    )


@dataclass(eq=False)
class LogReader:
    """Reads one execution's events from its partition of the pipeline topic.

    With ``bootstrap_servers`` a consumer reads the partition and skips other keys
    without decoding them; with only a started ``log`` (the process's ``EventLog``),
    records are read with ``log.read_range`` and filtered after decoding.
    """

    topic: str
    _: KW_ONLY
    bootstrap_servers: str | None = None
    log: EventLog | None = None
    codec: EventCodec = field(default_factory=default_codec)
    batch_size: int = 2000
    security: KafkaSecurity = PLAINTEXT

    def __post_init__(self) -> None:
        if self.bootstrap_servers is None and self.log is None:
            raise ValueError("LogReader needs bootstrap_servers or a started EventLog")
        self._settings = ConsumerSettings(
            client_id="orchestrator-replay", fetch_max_wait_ms=50, security=self.security
        )

    async def partitions(self) -> int:
        """How many partitions the topic has."""
        if self.log is not None:
            return len(await self.log.end_offsets(self.topic))
        assert self.bootstrap_servers is not None
        async with reading_log(self.bootstrap_servers, self.codec, self.security) as log:
            return len(await log.end_offsets(self.topic))

    async def partition_of(self, execution_id: str) -> int:
        """The partition the producer's default partitioner (murmur2 of the key, as in
        the Java client) sends the execution's events to."""
        return int(murmur2(execution_id.encode()) & 0x7FFFFFFF) % await self.partitions()

    async def stream(
        self,
        execution_id: str,
        partition: int,
        *,
        after_offset: int | None = None,
        topic: str | None = None,
    ) -> AsyncIterator[ArchivedEvent]:
        """The execution's events on ``partition`` of ``topic`` (default: this reader's)
        after ``after_offset`` (from the earliest retained offset when ``None``), up to
        the partition's end at the first fetch."""
        start = None if after_offset is None else after_offset + 1
        topic = topic or self.topic
        if self.bootstrap_servers is None:
            assert self.log is not None
            reader = cast(
                AsyncGenerator[tuple[Position, Envelope], None],
                self.log.read_range(topic, partition, start),
            )
            async with contextlib.aclosing(reader) as records:
                async for position, envelope in records:
                    if envelope.execution_id == execution_id:
                        yield ArchivedEvent(position, envelope)
            return
        async for event in self._consume(execution_id, topic, partition, start):
            yield event

    async def _consume(
        self, execution_id: str, topic: str, partition: int, start: int | None
    ) -> AsyncIterator[ArchivedEvent]:
        key = execution_id.encode()
        tp = TopicPartition(topic, partition)
        assert self.bootstrap_servers is not None
        async with EventConsumer(self.bootstrap_servers, self._settings) as consumer:
            consumer.assign([tp])
            low = (await consumer.beginning_offsets([tp]))[tp]
            if start is not None and start < low:
                raise LogError(
                    f"{topic}[{partition}]: offset {start} is before the earliest retained "
                    f"offset {low} (deleted by retention)",
                    retriable=False,
                )
            consumer.seek(tp, low if start is None else start)
            # The end is the high watermark of the first fetch (as EventLog.read_range).
            stop: int | None = None
            while stop is None or await consumer.position(tp) < stop:
                records = await consumer.getmany(tp, max_records=self.batch_size, timeout_ms=50)
                if stop is None:
                    high = consumer.highwater(tp)
                    if high is None:
                        continue
                    stop = high
                for record in records:
                    if record.position.offset >= stop:
                        return
                    if record.key != key:
                        continue
                    try:
                        envelope = self.codec.decode(record.value)
                    except DecodeError:
                        continue  # poison: the processor dead-letters it, no fold has it
                    yield ArchivedEvent(record.position, envelope)
