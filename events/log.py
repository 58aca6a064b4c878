"""The Kafka event log: append events (single or batched), read a partition's range.

Durability: ``acks='all'`` and an idempotent producer where the broker has one, so a
retried batch is never written twice. Brokers without it (Tansu answers
InitProducerId with ``UnknownError``) get a plain producer and a WARNING: a retry may
then duplicate a batch, and the fold's sequence check drops the duplicates (design §3).

Ordering of one key's events holds either way: aiokafka keeps one produce request in
flight per broker and puts a failed batch back at the head of its partition's queue.
(The Java client needs idempotence, or ``max.in.flight=1``, for that.) What a
non-idempotent producer can do is lose a batch that expired after retries while a later
one lands; ``append_batch`` then raises, and the writer appends again from its last
acknowledged sequence.

Every event is encoded before the first byte is sent, so an invalid event raises
``InvalidEvent`` and writes nothing. Broker errors become ``LogError`` with aiokafka's
``retriable`` flag.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import aiokafka
from aiokafka import codec as kafka_codecs

from orchestrator.events import tracing
from orchestrator.events._kafka import (
    broker_supports_idempotence,
    explaining,
    start_client,
    translated,
)
from orchestrator.events._produce import (
    CODECS,
    RECORD_OVERHEAD,
    KeyPartitioner,
    Record,
    check_sizes,
    send_batched,
    send_each,
    too_large,
)
from orchestrator.events.consumer import ConsumerSettings, EventConsumer, TopicPartition
from orchestrator.events.envelope import Envelope, Position
from orchestrator.events.errors import DecodeError, LogError
from orchestrator.events.resource import Resource
from orchestrator.events.security import PLAINTEXT, KafkaSecurity
from orchestrator.events.topics import TopicsConfig

logger = logging.getLogger(__name__)

Compression = Literal["zstd", "lz4", "gzip", "snappy"]

BATCHED_FROM = 32
"""``append_batch`` builds its own per-partition batches from this many events on;
smaller ones go record by record, so aiokafka can merge them with other callers'."""

_COMPRESSION_AVAILABLE = {
    "zstd": kafka_codecs.has_zstd,
    "lz4": kafka_codecs.has_lz4,
    "snappy": kafka_codecs.has_snappy,
    "gzip": kafka_codecs.has_gzip,
}


class EventCodecLike(Protocol):
    """What the log needs from ``events.codec.EventCodec``."""

    def encode(self, envelope: Envelope, /) -> bytes:
        """Encode one event; raise ``InvalidEvent`` naming the field if it does not fit."""
        ...

    def decode(self, data: bytes, /) -> Envelope:
        """Decode one event; raise ``DecodeError`` for bytes that are not one."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ProducerSettings:
    """Producer configuration; defaults are durable and fast for ~300-byte events.

    ``max_batch_size`` is per partition and uncompressed: 256 KiB let a single process
    pass 60k events/s where aiokafka's 16 KiB default stalls near 25k.
    ``linger_ms=0`` keeps single appends quick; under load batches fill anyway while
    the previous request is in flight. ``compression_type`` compresses the batches of
    ``append_batch`` calls of ``BATCHED_FROM`` events or more; smaller appends travel
    uncompressed (``events._produce``: a zstd context per tiny batch costs ~100 µs).

    ``producers``: how many Kafka producers (connections) the log appends through.
    aiokafka sends one produce request per broker at a time and holds every other
    record until it is answered; partition p always goes through producer
    ``p % producers``, so a key's records keep their order while two requests travel
    at once. 100 writers sending 10 KB records to one broker: 5,000-9,000/s through one
    producer, 14,000-17,700/s through two, 13,500-15,100/s through four.
    """

    client_id: str = "orchestrator-state"
    acks: Literal["all", 1] = "all"  # not 0: an append returns the acked position
    enable_idempotence: bool = True
    compression_type: Compression | None = "zstd"
    linger_ms: int = 0
    max_batch_size: int = 256 * 1024
    max_request_size: int = 1024 * 1024
    request_timeout_ms: int = 30_000
    security: KafkaSecurity = PLAINTEXT
    """SASL / TLS of the producer (and of the probe and reader it opens)."""
    producers: int = 2
    delivery_timeout_ms: int = 30_000
    """The deadline of one append, from the call to the last acknowledgement (the Java
    client's ``delivery.timeout.ms``): past it the append raises a retriable
    ``LogError``. aiokafka itself retries a batch until it expires, which with brokers
    down took minutes."""

    def __post_init__(self) -> None:
        if self.delivery_timeout_ms <= 0:
            raise ValueError(f"delivery_timeout_ms must be > 0, got {self.delivery_timeout_ms}")
        if self.enable_idempotence and self.acks != "all":
            raise ValueError(f"enable_idempotence needs acks='all', not acks={self.acks!r}")
        if self.max_batch_size > self.max_request_size:
            raise ValueError("max_batch_size must not exceed max_request_size")
        if self.producers < 1:
            raise ValueError(f"producers must be >= 1, got {self.producers}")


class EventLog(Resource):
    """Appends events to the topics of a ``TopicsConfig`` and reads them back."""

    def __init__(
        self,
        bootstrap_servers: str,
        codec: EventCodecLike,
        settings: ProducerSettings | None = None,
        *,
        topics: TopicsConfig | None = None,
        supports_idempotence: bool | None = None,
        read_settings: ConsumerSettings | None = None,
    ) -> None:
        """``supports_idempotence=None`` asks the broker at ``start()``; False skips asking."""
        self._bootstrap = bootstrap_servers
        self._codec = codec
        self._settings = settings or ProducerSettings()
        self._topics = topics or TopicsConfig()
        self._supports_idempotence = supports_idempotence
        self._read_settings = read_settings or ConsumerSettings(
            client_id=f"{self._settings.client_id}-reader", security=self._settings.security
        )
        self._producers: list[Any] = []
        self._offsets: EventConsumer | None = None
        self._offsets_lock = asyncio.Lock()
        self._partition = KeyPartitioner()
        self._idempotent = False

    @property
    def topics(self) -> TopicsConfig:
        """The topics this log appends to by default."""
        return self._topics

    @property
    def idempotent(self) -> bool:
        """Whether the running producer is idempotent (known after ``start()``)."""
        return self._idempotent

    async def start(self) -> None:
        """Connect the producer, choosing idempotence by what the broker supports; a
        refused login is named (``LogError``, not retriable)."""
        async with explaining(self._bootstrap, self._settings.security):
            await self._start()

    async def _start(self) -> None:
        s = self._settings
        compression = s.compression_type
        if compression is not None and not _COMPRESSION_AVAILABLE[compression]():
            raise LogError(
                f"compression_type={compression!r} needs the cramjam package "
                f"(install aiokafka[{compression}])",
                retriable=False,
            )
        idempotent = s.enable_idempotence
        if idempotent and self._supports_idempotence is None:
            idempotent = await broker_supports_idempotence(
                self._bootstrap,
                client_id=s.client_id,
                request_timeout_ms=s.request_timeout_ms,
                security=s.security,
            )
        elif idempotent:
            idempotent = self._supports_idempotence is True
        if s.enable_idempotence and not idempotent:
            logger.warning(
                "broker at %s has no idempotent producer: appending with "
                "enable_idempotence=False; a retried batch may be written twice, and the "
                "fold's sequence check drops such duplicates (design §3)",
                self._bootstrap,
            )
        started: list[Any] = []
        try:
            for _ in range(s.producers):
                producer = aiokafka.AIOKafkaProducer(
                    bootstrap_servers=self._bootstrap,
                    client_id=s.client_id,
                    acks=s.acks,
                    enable_idempotence=idempotent,
                    compression_type=None,  # large batches are compressed by send_batched
                    linger_ms=s.linger_ms,
                    max_batch_size=s.max_batch_size,
                    max_request_size=s.max_request_size,
                    request_timeout_ms=s.request_timeout_ms,
                    **s.security.client_kwargs(),
                )
                await start_client(producer, f"starting the producer on {self._bootstrap}")
                started.append(producer)
        except BaseException:
            with contextlib.suppress(Exception):  # the start's own error is the one to raise
                await _stop_all(started)
            raise
        self._producers = started
        self._idempotent = idempotent

    async def stop(self) -> None:
        """Flush what is pending and close; safe to call twice."""
        producers, self._producers = self._producers, []
        offsets, self._offsets = self._offsets, None
        try:
            await _stop_all(producers)
        finally:
            if offsets is not None:
                await offsets.stop()

    @property
    def _p(self) -> list[Any]:
        """The started producers (``ProducerSettings.producers``)."""
        if not self._producers:
            raise RuntimeError("EventLog is not started: call start() or use async with")
        return self._producers

    async def append(self, envelope: Envelope, topic: str | None = None) -> Position:
        """Append one event and wait until the broker acknowledged it; return its position.

        ``topic=None`` routes shared-state events to the shared topic and every other
        event to the pipeline topic. The key is ``envelope.key()``.
        """
        return (await self.append_batch((envelope,), topic))[0]

    async def append_batch(
        self, envelopes: Sequence[Envelope], topic: str | None = None
    ) -> list[Position]:
        """Append events in order and wait for all; return their positions in order.

        The fast path: every event is encoded first (an ``InvalidEvent`` writes nothing,
        nor does an event too large for the broker), then all are handed to the producer
        without waiting, so they travel in a few large compressed batches, and the
        acknowledgements are awaited together. If the broker fails part of the batch the
        call raises ``LogError``; events of other partitions may have been written.
        """
        records = self._records(envelopes, topic)
        if not tracing.enabled():
            return await self._send(records, None)
        first, last = (envelopes[0], envelopes[-1]) if envelopes else (None, None)
        with tracing.span(
            "orchestrator.append",
            execution_id=None if first is None else first.execution_id,
            first_sequence=None if first is None else first.sequence,
            last_sequence=None if last is None else last.sequence,
            topic=records[0][0] if records else None,
            events=len(records),
        ):
            return await self._send(records, tracing.headers())

    def _records(self, envelopes: Sequence[Envelope], topic: str | None) -> list[Record]:
        """Each event encoded (``InvalidEvent`` first), keyed, routed and size-checked
        against ``max_request_size``: one pass, a hot path (every event appended)."""
        encode, route = self._codec.encode, self._topics.topic_for
        limit = self._settings.max_request_size - RECORD_OVERHEAD
        records: list[Record] = []
        for index, e in enumerate(envelopes):
            value = encode(e)
            execution_id = e.execution_id
            key = e.key() if execution_id is None else execution_id.encode()
            where = route(e.payload.event_type) if topic is None else topic
            if len(value) + len(key) > limit:
                size = len(value) + len(key) + RECORD_OVERHEAD
                raise too_large(index, where, size, self._settings.max_request_size)
            records.append((where, key, value))
        return records

    async def _send(
        self, records: list[Record], headers: list[tuple[str, bytes]] | None
    ) -> list[Position]:
        what = f"appending {len(records)} event(s)"
        try:  # asyncio.timeout itself, not _deadline: a hot path (once per append)
            async with asyncio.timeout(self._settings.delivery_timeout_ms / 1000):
                if len(records) >= BATCHED_FROM:
                    return await send_batched(
                        self._p,
                        self._partition,
                        records,
                        what=what,
                        timeout_ms=self._settings.request_timeout_ms,
                        batch_size=self._settings.max_batch_size,
                        codec=CODECS[self._settings.compression_type],
                        headers=headers,
                    )
                return await send_each(
                    self._p, self._partition, records, what=what, headers=headers
                )
        except TimeoutError as exc:
            raise self._late(what, records) from exc

    def _late(self, what: str, records: Sequence[Record]) -> LogError:
        """The retriable error of an append not acknowledged within ``delivery_timeout_ms``."""
        topics = ", ".join(sorted({r[0] for r in records}))
        return LogError(
            f"{what} to {topics}: not acknowledged by Kafka at {self._bootstrap} within "
            f"{self._settings.delivery_timeout_ms / 1000:g} s (delivery_timeout_ms); the "
            f"brokers may be down or without enough in-sync replicas; outcome unknown, retry",
            retriable=True,
        )

    @contextlib.asynccontextmanager
    async def _deadline(self, what: str, records: Sequence[Record]) -> AsyncIterator[None]:
        """Bound an append by ``delivery_timeout_ms``; past it, a retriable ``LogError``
        naming the topics and the bootstrap servers. What was handed to the producer may
        still be written later: the caller must treat the outcome as unknown (the
        execution writer re-takes ownership, so such late events carry a stale epoch)."""
        try:
            async with asyncio.timeout(self._settings.delivery_timeout_ms / 1000):
                yield
        except TimeoutError as exc:
            raise self._late(what, records) from exc

    async def append_raw(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Iterable[tuple[str, bytes]] = (),
    ) -> Position:
        """Append bytes as they are: the dead-letter path copies poison records with this."""
        records: list[Record] = [(topic, key, value)]
        check_sizes(records, self._settings.max_request_size)
        what = f"appending a raw record to {topic}"
        async with self._deadline(what, records):
            return (
                await send_each(self._p, self._partition, records, what=what, headers=list(headers))
            )[0]
        raise AssertionError("unreachable")  # pragma: no cover - the block returns or raises

    async def append_raw_batch(self, records: Sequence[Record]) -> list[Position]:
        """Append ``(topic, key, value)`` records as they are, in order, and wait for all
        (``restore-backup`` re-appends a backup's events, event ids and all, with this)."""
        batch = list(records)
        check_sizes(batch, self._settings.max_request_size)
        return await self._send(batch, None)

    async def read_range(
        self, topic: str, partition: int, start: int | None = None, end: int | None = None
    ) -> AsyncIterator[tuple[Position, Envelope]]:
        """Decoded events of one partition from ``start`` (earliest) to ``end`` (exclusive).

        An undecodable record raises ``DecodeError`` naming its topic, partition and
        offset. ``end=None`` reads up to the end offset at the time of the call. A caller
        that stops early should wrap the iterator in ``contextlib.aclosing`` so the
        reader's connection closes at once.
        """
        async for position, value in self.read_range_raw(topic, partition, start, end):
            try:
                envelope = self._codec.decode(value)
            except DecodeError as exc:
                raise exc.at(position.topic, position.partition, position.offset) from exc
            yield position, envelope

    async def read_range_raw(
        self,
        topic: str,
        partition: int,
        start: int | None = None,
        end: int | None = None,
        *,
        batch_size: int = 2000,
    ) -> AsyncIterator[tuple[Position, bytes]]:
        """Undecoded records of one partition between two offsets (the DLQ path's view).

        A ``start`` below the earliest retained offset is a ``LogError``: that history
        was deleted by retention and reading on would silently skip it.
        """
        tp = TopicPartition(topic, partition)
        if end is not None and start is not None and start >= end:
            return
        async with EventConsumer(self._bootstrap, self._read_settings) as consumer:
            consumer.assign([tp])
            low = (await consumer.beginning_offsets([tp]))[tp]
            first = low if start is None else start
            if first < low:
                raise LogError(
                    f"{topic}[{partition}]: offset {first} is before the earliest retained "
                    f"offset {low} (deleted by retention)",
                    retriable=False,
                )
            consumer.seek(tp, first)
            # The end is the high watermark of the first fetch response, not ListOffsets:
            # Tansu 0.6 answers ListOffsets with the last batch's base offset + 1.
            stop: int | None = None
            while stop is None or await consumer.position(tp) < stop:
                records = await consumer.getmany(tp, max_records=batch_size, timeout_ms=50)
                if stop is None:
                    high = consumer.highwater(tp)
                    if high is None:
                        continue
                    stop = high if end is None else min(end, high)
                for record in records:
                    if record.position.offset >= stop:
                        return
                    yield record.position, record.value

    async def end_offsets(self, topic: str | None = None) -> dict[int, int]:
        """Next offset to be written, per partition of ``topic`` (default: pipeline topic)."""
        name = topic if topic is not None else self._topics.pipeline.name
        with translated(f"reading partitions of {name}"):
            partitions = sorted(await self._p[0].partitions_for(name))
        consumer = await self._offsets_consumer()
        found = await consumer.end_offsets(TopicPartition(name, p) for p in partitions)
        return {tp.partition: offset for tp, offset in sorted(found.items())}

    async def _offsets_consumer(self) -> EventConsumer:
        async with self._offsets_lock:
            if self._offsets is None:
                consumer = EventConsumer(self._bootstrap, self._read_settings)
                await consumer.start()
                self._offsets = consumer
            return self._offsets


async def _stop_all(producers: Sequence[Any]) -> None:
    """Flush and close each producer; the first failure is raised once all were tried."""
    failure: BaseException | None = None
    for producer in producers:
        try:
            with translated("stopping the producer"):
                await producer.stop()
        except BaseException as exc:  # the others still flush and close
            failure = failure or exc
    if failure is not None:
        raise failure
