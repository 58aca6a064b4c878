"""A thin consumer over aiokafka with manual offsets, for readers and processors.

Offsets are never auto-committed: a processor's read model stores the next offset in
the same PostgreSQL transaction as its rows, and seeks there when partitions are
assigned (design §4; aiokafka #848 and faust-streaming #606 show what auto-commit
does on a crash). Two modes:

- **assigned**: ``assign([...])`` then ``seek`` — the replay tool and
  ``EventLog.read_range`` read one partition between two offsets this way;
- **group**: ``group_id=`` plus ``subscribe(topics, listener)`` — driven by the one
  group member (``events.group.GroupMember``), whose listener seeks to the offsets
  stored with each processor's data in ``on_partitions_assigned``. ``commit`` exists
  for lag metrics only.

Upper layers see only our ``TopicPartition``, ``RawRecord`` and ``RebalanceListener``;
aiokafka's types stay in this module.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field
from typing import Any, Literal, NamedTuple, Protocol

import aiokafka
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.structs import OffsetAndMetadata

from orchestrator.events._kafka import explaining, start_client, translated
from orchestrator.events._slots import constructor
from orchestrator.events.envelope import Envelope, Position
from orchestrator.events.errors import DecodeError
from orchestrator.events.resource import Resource
from orchestrator.events.security import PLAINTEXT, KafkaSecurity

IsolationLevel = Literal["read_uncommitted", "read_committed"]
OffsetReset = Literal["earliest", "latest", "none"]


class TopicPartition(NamedTuple):
    """A topic partition, equal to (and hashing like) aiokafka's own."""

    topic: str
    partition: int


@dataclass(frozen=True, slots=True)
class RawRecord:
    """One record as stored: its position, key, undecoded value, timestamp, headers."""

    position: Position
    key: bytes | None
    value: bytes
    timestamp_ms: int
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class DecodedRecord:
    """A record after decoding: the envelope, or the error that makes it a poison record.

    Decoding failures are values here, not exceptions, so a processor can send the
    record to the DLQ and keep the partition flowing.
    """

    record: RawRecord
    envelope: Envelope | None
    error: DecodeError | None

    @property
    def position(self) -> Position:
        """Where the record sits in the log."""
        return self.record.position


class Decoder(Protocol):
    """What :func:`decode_records` needs from the event codec."""

    def decode(self, data: bytes, /) -> Envelope:
        """Decode one event; raise ``DecodeError`` for bytes that are not one."""
        ...


def decode_records(codec: Decoder, records: Iterable[RawRecord]) -> list[DecodedRecord]:
    """Decode a batch, turning each ``DecodeError`` into a value naming its position."""
    out: list[DecodedRecord] = []
    append, decoded, decode = out.append, _new_decoded, codec.decode
    for record in records:
        try:
            append(decoded(record, decode(record.value), None))
        except DecodeError as exc:
            pos = record.position
            append(decoded(record, None, exc.at(pos.topic, pos.partition, pos.offset)))
    return out


class RebalanceListener(Protocol):
    """Called in group mode around a rebalance; may call ``EventConsumer.seek``."""

    async def on_partitions_revoked(self, revoked: frozenset[TopicPartition]) -> None:
        """Partitions about to be taken away: finish (commit) their work now."""
        ...

    async def on_partitions_assigned(self, assigned: frozenset[TopicPartition]) -> None:
        """Partitions now owned: seek each to the offset stored with the read model."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ConsumerSettings:
    """Consumer tuning; the defaults suit a reader that wants whole batches quickly."""

    client_id: str = "orchestrator-state-consumer"
    isolation_level: IsolationLevel = "read_uncommitted"
    auto_offset_reset: OffsetReset = "earliest"
    fetch_max_wait_ms: int = 100
    fetch_max_bytes: int = 50 * 1024 * 1024
    max_partition_fetch_bytes: int = 4 * 1024 * 1024
    request_timeout_ms: int = 40_000
    session_timeout_ms: int = 10_000
    heartbeat_interval_ms: int = 3_000
    max_poll_interval_ms: int = 300_000
    metadata_max_age_ms: int = 5_000
    """How soon a topic created after start is seen (aiokafka's default waits 5 min)."""
    security: KafkaSecurity = PLAINTEXT
    """SASL / TLS of the consumer."""


class _ListenerAdapter(ConsumerRebalanceListener):  # type: ignore[misc]  # untyped base
    """Presents aiokafka's callbacks to our listener with our partition type."""

    def __init__(self, listener: RebalanceListener) -> None:
        self._listener = listener

    async def on_partitions_revoked(self, revoked: Iterable[Any]) -> None:
        await self._listener.on_partitions_revoked(_ours(revoked))

    async def on_partitions_assigned(self, assigned: Iterable[Any]) -> None:
        await self._listener.on_partitions_assigned(_ours(assigned))


def _ours(tps: Iterable[Any]) -> frozenset[TopicPartition]:
    return frozenset(TopicPartition(tp.topic, tp.partition) for tp in tps)


def _theirs(tp: TopicPartition) -> Any:
    return aiokafka.TopicPartition(tp.topic, tp.partition)


_new_position: Callable[..., Position] = constructor(Position)
_new_raw: Callable[..., RawRecord] = constructor(RawRecord)
_new_decoded: Callable[..., DecodedRecord] = constructor(DecodedRecord)
"""The records of every fetch, built without the frozen ``__init__`` (``events._slots``)."""


def _raw(record: Any) -> RawRecord:
    value = record.value
    return _new_raw(
        _new_position(record.topic, record.partition, record.offset),
        record.key,
        value if value is not None else b"",
        record.timestamp,
        tuple(record.headers) if record.headers else (),
    )


@dataclass(eq=False)
class EventConsumer(Resource):
    """An aiokafka consumer with auto-commit off, in assigned or group mode."""

    bootstrap_servers: str
    settings: ConsumerSettings = field(default_factory=ConsumerSettings)
    _: KW_ONLY
    group_id: str | None = None
    _consumer: Any = field(default=None, init=False, repr=False)

    async def start(self) -> None:
        """Connect; in group mode the group is joined on the first ``getmany``."""
        s = self.settings
        consumer = aiokafka.AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            client_id=s.client_id,
            group_id=self.group_id,
            enable_auto_commit=False,
            isolation_level=s.isolation_level,
            auto_offset_reset=s.auto_offset_reset,
            fetch_max_wait_ms=s.fetch_max_wait_ms,
            fetch_max_bytes=s.fetch_max_bytes,
            max_partition_fetch_bytes=s.max_partition_fetch_bytes,
            request_timeout_ms=s.request_timeout_ms,
            session_timeout_ms=s.session_timeout_ms,
            heartbeat_interval_ms=s.heartbeat_interval_ms,
            max_poll_interval_ms=s.max_poll_interval_ms,
            metadata_max_age_ms=s.metadata_max_age_ms,
            **s.security.client_kwargs(),
        )
        async with explaining(self.bootstrap_servers, s.security):
            await start_client(consumer, f"starting a consumer on {self.bootstrap_servers}")
        self._consumer = consumer

    async def stop(self) -> None:
        """Leave the group (if any) and close connections; safe to call twice."""
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            with translated("stopping a consumer"):
                await consumer.stop()

    @property
    def _c(self) -> Any:
        if self._consumer is None:
            raise RuntimeError("EventConsumer is not started: call start() or use async with")
        return self._consumer

    def assign(self, partitions: Iterable[TopicPartition]) -> None:
        """Read exactly these partitions (assigned mode); replaces any earlier assignment."""
        self._c.assign([_theirs(tp) for tp in partitions])

    def subscribe(self, topics: Sequence[str], listener: RebalanceListener | None = None) -> None:
        """Join the consumer group (``group_id``) for these topics (group mode)."""
        if self.group_id is None:
            raise ValueError("subscribe() needs a group_id; use assign() without one")
        adapter = _ListenerAdapter(listener) if listener is not None else None
        self._c.subscribe(topics=list(topics), listener=adapter)

    def assignment(self) -> frozenset[TopicPartition]:
        """The partitions this consumer reads now."""
        return _ours(self._c.assignment())

    def seek(self, tp: TopicPartition, offset: int) -> None:
        """Read ``tp`` from ``offset`` on (the next fetch)."""
        self._c.seek(_theirs(tp), offset)

    async def seek_to_beginning(self, *tps: TopicPartition) -> None:
        """Read these partitions from their earliest retained offset."""
        with translated("seeking to the beginning"):
            await self._c.seek_to_beginning(*(_theirs(tp) for tp in tps))

    async def seek_to_end(self, *tps: TopicPartition) -> None:
        """Read only records appended from now on."""
        with translated("seeking to the end"):
            await self._c.seek_to_end(*(_theirs(tp) for tp in tps))

    async def position(self, tp: TopicPartition) -> int:
        """The offset of the next record that will be read from ``tp``."""
        with translated(f"reading the position of {tp.topic}[{tp.partition}]"):
            return int(await self._c.position(_theirs(tp)))

    def highwater(self, tp: TopicPartition) -> int | None:
        """The partition's end as of the last fetch response (None before the first one)."""
        value = self._c.highwater(_theirs(tp))
        return None if value is None else int(value)

    async def beginning_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The earliest retained offset of each partition."""
        with translated("reading beginning offsets"):
            found = await self._c.beginning_offsets([_theirs(tp) for tp in tps])
        return {TopicPartition(tp.topic, tp.partition): int(o) for tp, o in found.items()}

    async def end_offsets(self, tps: Iterable[TopicPartition]) -> dict[TopicPartition, int]:
        """The next offset to be written (last stable offset under read_committed)."""
        with translated("reading end offsets"):
            found = await self._c.end_offsets([_theirs(tp) for tp in tps])
        return {TopicPartition(tp.topic, tp.partition): int(o) for tp, o in found.items()}

    async def getmany(
        self,
        *tps: TopicPartition,
        max_records: int = 500,
        timeout_ms: int = 1000,
    ) -> list[RawRecord]:
        """Up to ``max_records`` records (of ``tps``, or of all), each partition in order."""
        with translated("fetching records"):
            fetched = await self._c.getmany(
                *(_theirs(tp) for tp in tps), timeout_ms=timeout_ms, max_records=max_records
            )
        return [_raw(record) for records in fetched.values() for record in records]

    async def batches(
        self,
        *,
        max_records: int = 500,
        timeout_ms: int = 1000,
        yield_empty: bool = False,
    ) -> AsyncIterator[list[RawRecord]]:
        """Batches for ever; ``yield_empty`` also yields after an idle ``timeout_ms``."""
        while True:
            batch = await self.getmany(max_records=max_records, timeout_ms=timeout_ms)
            if batch or yield_empty:
                yield batch

    def pause(self, *tps: TopicPartition) -> None:
        """Stop fetching these partitions (back-pressure) without losing their position."""
        self._c.pause(*(_theirs(tp) for tp in tps))

    def resume(self, *tps: TopicPartition) -> None:
        """Fetch paused partitions again."""
        self._c.resume(*(_theirs(tp) for tp in tps))

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit next-offsets to Kafka (group mode): for lag metrics, not for recovery."""
        with translated("committing offsets"):
            await self._c.commit(
                {_theirs(tp): OffsetAndMetadata(o, "") for tp, o in offsets.items()}
            )
