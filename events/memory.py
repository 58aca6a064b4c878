"""``MemoryEventLog``: the event log in this process, for the memory backend.

It is the Kafka log's adapter of the same ports (``Appender`` and the readers), not a
mock: every event is Avro-encoded by the same codec (an ``InvalidEvent`` writes
nothing), a record the broker would refuse is refused the same way, and events are
keyed and partitioned exactly as the producer does (murmur2 of the execution id), so
one execution's history is totally ordered on one partition with gapless offsets.

Readers see the encoded bytes, as a Kafka consumer would: the in-process projection
(``projections.memory``) decodes and folds them with the one fold. ``subscribe``
registers a callback called synchronously, in append order, for every record; an
append returns once its records are in the log and every subscriber has seen them.

``max_bytes`` bounds the history: the log is what the state is rebuilt from, so it is
never evicted; an append that would exceed the bound is refused (``LogError``, not
retriable) and writes nothing. ``dump``/``load`` give the records as they are (bytes),
for ``events.memory_dump``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass

from orchestrator.events._produce import RECORD_OVERHEAD, KeyPartitioner
from orchestrator.events.codec import EventCodec, default_codec
from orchestrator.events.envelope import Envelope, Position
from orchestrator.events.errors import DecodeError, LogError
from orchestrator.events.topics import TopicsConfig, dlq_name

DEFAULT_MAX_REQUEST_SIZE = 1024 * 1024


@dataclass(frozen=True, slots=True)
class MemoryRecord:
    """One record of the log as a consumer would read it."""

    position: Position
    key: bytes | None
    value: bytes


Subscriber = Callable[[MemoryRecord], None]


class MemoryEventLog:
    """See the module docstring. ``start``/``stop`` exist for symmetry with ``EventLog``."""

    def __init__(
        self,
        codec: EventCodec | None = None,
        *,
        topics: TopicsConfig | None = None,
        max_request_size: int = DEFAULT_MAX_REQUEST_SIZE,
        max_bytes: int | None = None,
    ) -> None:
        self._codec = codec or default_codec()
        self._topics = topics or TopicsConfig()
        self._max_request_size = max_request_size
        self.max_bytes = max_bytes
        self._partition = KeyPartitioner()
        self._partitions: dict[str, int] = {}
        for spec in (self._topics.pipeline, self._topics.shared):
            self._partitions[spec.name] = spec.partitions
            self._partitions[dlq_name(spec.name)] = self._topics.dlq_partitions
        self._records: dict[tuple[str, int], list[MemoryRecord]] = {}
        self._subscribers: list[Subscriber] = []
        self.size_bytes = 0
        """Bytes of history held (values and keys): what ``max_bytes`` bounds."""
        self.version = 0
        """Incremented by every append (a dump writes only when it changed)."""

    # --- lifecycle (nothing to open) ---------------------------------------------------

    @property
    def topics(self) -> TopicsConfig:
        return self._topics

    @property
    def idempotent(self) -> bool:
        return True  # an in-process append is exactly once

    async def start(self) -> None:
        """Nothing to connect."""

    async def stop(self) -> None:
        """Nothing to close; the records stay readable."""

    async def __aenter__(self) -> MemoryEventLog:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # --- writing -----------------------------------------------------------------------

    def subscribe(self, subscriber: Subscriber) -> None:
        """Call ``subscriber`` with every record appended from now on, in order."""
        self._subscribers.append(subscriber)

    def partitions(self, topic: str) -> int:
        """The partition count of ``topic`` (``LogError`` for an unknown topic)."""
        try:
            return self._partitions[topic]
        except KeyError:
            raise LogError(f"unknown topic {topic!r}", retriable=False) from None

    async def append(self, envelope: Envelope, topic: str | None = None) -> Position:
        """Append one event; its position."""
        return (await self.append_batch((envelope,), topic))[0]

    async def append_batch(
        self, envelopes: Sequence[Envelope], topic: str | None = None
    ) -> list[Position]:
        """Encode every event first (nothing is written if one is invalid), then append
        them in order; their positions."""
        records = [
            (
                topic if topic is not None else self._topics.topic_for(e.event_type),
                e.key(),
                self._codec.encode(e),
            )
            for e in envelopes
        ]
        return self._write(records)

    async def append_raw(
        self,
        topic: str,
        value: bytes,
        *,
        key: bytes | None = None,
        headers: Iterable[tuple[str, bytes]] = (),
    ) -> Position:
        """Append bytes as they are (the dead-letter path)."""
        return self._write([(topic, key, value)])[0]

    def _write(self, records: Sequence[tuple[str, bytes | None, bytes]]) -> list[Position]:
        added = 0
        for index, (topic, key, value) in enumerate(records):
            size = len(value) + len(key or b"")
            if size + RECORD_OVERHEAD > self._max_request_size:
                raise LogError(
                    f"record {index} for {topic} is ~{size + RECORD_OVERHEAD} bytes, above "
                    f"max_request_size {self._max_request_size}: claim-check large user data "
                    "instead",
                    retriable=False,
                )
            self.partitions(topic)
            added += size
        if self.max_bytes is not None and self.size_bytes + added > self.max_bytes:
            raise LogError(
                f"memory backend: appending {added} bytes would hold "
                f"{self.size_bytes + added} bytes of history, above max_size "
                f"{self.max_bytes}; history is never evicted (the state is rebuilt from "
                "it): raise state_management.config.max_size",
                retriable=False,
            )
        out = [self._put(topic, key, value) for topic, key, value in records]
        self.version += 1
        return out

    def _put(self, topic: str, key: bytes | None, value: bytes) -> Position:
        count = self._partitions[topic]
        partition = 0 if key is None else self._partition(key, count)
        rows = self._records.setdefault((topic, partition), [])
        record = MemoryRecord(Position(topic, partition, len(rows)), key, value)
        rows.append(record)
        self.size_bytes += len(value) + len(key or b"")
        for subscriber in self._subscribers:
            subscriber(record)
        return record.position

    # --- reading -----------------------------------------------------------------------

    async def end_offsets(self, topic: str | None = None) -> dict[int, int]:
        """Next offset to be written, per partition of ``topic`` (default: pipeline)."""
        name = topic or self._topics.pipeline.name
        return {p: len(self._records.get((name, p), ())) for p in range(self.partitions(name))}

    async def partition_of(self, execution_id: str) -> int:
        """The partition holding ``execution_id``'s events."""
        name = self._topics.pipeline.name
        return self._partition(execution_id.encode(), self.partitions(name))

    @property
    def topic(self) -> str:
        return self._topics.pipeline.name

    async def read_range_raw(
        self, topic: str, partition: int, start: int | None = None, end: int | None = None
    ) -> AsyncIterator[tuple[Position, bytes]]:
        """Undecoded records of one partition between two offsets."""
        for record in self.records_of(topic, partition, start, end):
            yield record.position, record.value

    async def read_range(
        self, topic: str, partition: int, start: int | None = None, end: int | None = None
    ) -> AsyncIterator[tuple[Position, Envelope]]:
        """Decoded events of one partition (``DecodeError`` names the position)."""
        for record in self.records_of(topic, partition, start, end):
            try:
                envelope = self._codec.decode(record.value)
            except DecodeError as exc:
                p = record.position
                raise exc.at(p.topic, p.partition, p.offset) from exc
            yield record.position, envelope

    def records_of(
        self, topic: str, partition: int, start: int | None = None, end: int | None = None
    ) -> list[MemoryRecord]:
        """The records of one partition from ``start`` to ``end`` (exclusive)."""
        rows = self._records.get((topic, partition), [])
        return rows[start or 0 : len(rows) if end is None else end]

    # --- dump and load (``events.memory_dump``) ------------------------------------------

    def dump(self) -> Iterator[MemoryRecord]:
        """Every record, partition by partition, in offset order."""
        for key in sorted(self._records):
            yield from self._records[key]

    def load(self, records: Iterable[MemoryRecord]) -> int:
        """Put records read back from a dump at their positions (an empty log only);
        subscribers see them as appended. The number loaded."""
        if self._records:
            raise LogError("memory backend: load into a log that is not empty", retriable=False)
        count = 0
        for record in records:
            p = record.position
            self.partitions(p.topic)
            rows = self._records.get((p.topic, p.partition), [])
            if p.offset != len(rows):
                raise LogError(
                    f"memory backend dump: {p.token()} is not the next offset ({len(rows)})",
                    retriable=False,
                )
            self._put(p.topic, record.key, record.value)
            count += 1
        return count
