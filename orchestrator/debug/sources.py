"""Where an execution's history is read from, one event at a time.

* :class:`ArchiveReader`: the projection's ``execution_events`` archive (the raw Avro
  bytes exactly as the log delivered them, decoded here), in ``(partition, offset)``
  order, in keyset pages, so a 100,000-event history never sits in memory;
* :class:`LogReader`: the Kafka partition itself, read with the manual-offset consumer
  and filtered by key (the execution id), so replay does not depend on the read side.

Both yield :class:`snapshots.ArchivedEvent` (position + envelope). The two must agree:
the archive is a copy of the log written by the processor in the transaction of its
rows, and the integration tests fold both and compare.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, cast

import asyncpg
from aiokafka.partitioner import murmur2

from orchestrator.events.codec import EventCodec, default_codec
from orchestrator.events.consumer import ConsumerSettings, EventConsumer, TopicPartition
from orchestrator.events.envelope import Envelope, Position
from orchestrator.events.errors import DecodeError, LogError
from orchestrator.events.log import EventLog, ProducerSettings
from orchestrator.events.security import PLAINTEXT, KafkaSecurity
from orchestrator.projections.settings import ReadModelTables
from orchestrator.snapshots import ArchivedEvent

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Located:
    """Where an execution's events sit, as the archive knows it."""

    topic: str
    partition: int
    events: int
    last_sequence: int | None


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


def _decode(codec: EventCodec, row: Mapping[str, Any]) -> Envelope | None:
    """The archived event, or ``None`` when the codec refuses it now (over a limit): the
    processor would dead-letter it, so it is in no execution's fold."""
    try:
        return codec.decode(bytes(row["raw"]))
    except DecodeError:
        return None


class EventHistory(Protocol):
    """What replay reads an execution's history from (:class:`ArchiveReader` is the
    PostgreSQL adapter; tests use one over lists)."""

    def stream(
        self, execution_id: str, *, after: tuple[int, int] | None = None
    ) -> AsyncIterator[ArchivedEvent]:
        """The execution's events after ``after`` (partition, offset), in log order."""
        ...

    async def locate(self, execution_id: str) -> Located | None:
        """Where the execution's events are, if any."""
        ...

    async def first_after(self, execution_id: str, when: datetime) -> tuple[int, int] | None:
        """(partition, offset) of the first event (log order) after ``when``."""
        ...

    async def checkpoint(self, checkpoint_id: str) -> tuple[str, int] | None:
        """(execution_id, sequence) of a saved checkpoint."""
        ...


class ForkableHistory(EventHistory, Protocol):
    """A history that also lists applied events (what ``fork`` copies)."""

    async def applied_events(
        self, execution_id: str, event_types: Sequence[str], max_sequence: int
    ) -> list[ArchivedEvent]:
        """Applied events of these types up to ``max_sequence``, in log order."""
        ...


class ArchiveReader:
    """Reads one projection's event archive (``tables.execution_events``) through ``pool``.

    ``rows_read`` counts archive rows fetched so far: tests use it to prove that a
    replay streams (it reads one page ahead of what it has yielded, never the rest).
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        tables: ReadModelTables | None = None,
        codec: EventCodec | None = None,
        page_size: int = 1000,
    ) -> None:
        if page_size < 1:
            raise ValueError("page_size must be >= 1")
        self.pool = pool
        self.tables = tables or ReadModelTables()
        self.codec = codec or default_codec()
        self.page_size = page_size
        self.rows_read = 0
        t = self.tables.execution_events
        self._page = (
            f'SELECT topic, partition, "offset", raw FROM {t} WHERE execution_id = $1'
            ' AND (partition, "offset") > ($2::int, $3::bigint)'
            ' ORDER BY partition, "offset" LIMIT $4'
        )

    async def stream(
        self, execution_id: str, *, after: tuple[int, int] | None = None
    ) -> AsyncGenerator[ArchivedEvent, None]:
        """The execution's events after ``after`` (partition, offset), in log order."""
        cursor = after or (-1, -1)
        while True:
            rows = await self.pool.fetch(
                self._page, execution_id, cursor[0], cursor[1], self.page_size
            )
            self.rows_read += len(rows)
            for row in rows:
                position = Position(row["topic"], row["partition"], row["offset"])
                envelope = _decode(self.codec, row)
                if envelope is not None:
                    yield ArchivedEvent(position, envelope)
            if len(rows) < self.page_size:
                return
            last = rows[-1]
            cursor = (last["partition"], last["offset"])

    async def locate(self, execution_id: str) -> Located | None:
        """The topic and partition of the execution's events, how many, the last sequence."""
        row = await self.pool.fetchrow(
            f"SELECT topic, partition, count(*) AS events, max(sequence) AS last_sequence"
            f" FROM {self.tables.execution_events} WHERE execution_id = $1"
            " GROUP BY topic, partition ORDER BY count(*) DESC LIMIT 1",
            execution_id,
        )
        if row is None:
            return None
        return Located(row["topic"], row["partition"], row["events"], row["last_sequence"])

    async def first_after(self, execution_id: str, when: datetime) -> tuple[int, int] | None:
        """(partition, offset) of the execution's first event (log order) after ``when``."""
        row = await self.pool.fetchrow(
            f'SELECT partition, "offset" FROM {self.tables.execution_events}'
            ' WHERE execution_id = $1 AND occurred_at > $2 ORDER BY partition, "offset" LIMIT 1',
            execution_id,
            when,
        )
        return None if row is None else (row["partition"], row["offset"])

    async def checkpoint(self, checkpoint_id: str) -> tuple[str, int] | None:
        """(execution_id, sequence) of a saved checkpoint: the checkpoints table, else the
        archived ``CheckpointSaved`` event (the table keeps only applied checkpoints)."""
        row = await self.pool.fetchrow(
            f"SELECT execution_id, sequence FROM {self.tables.checkpoints}"
            " WHERE checkpoint_id = $1",
            checkpoint_id,
        )
        if row is None:
            row = await self.pool.fetchrow(
                f"SELECT execution_id, sequence FROM {self.tables.execution_events}"
                " WHERE event_type = 'CheckpointSaved' AND outcome = 'applied'"
                " AND payload->>'checkpoint_id' = $1 LIMIT 1",
                checkpoint_id,
            )
        return None if row is None else (row["execution_id"], row["sequence"])

    async def applied_events(
        self, execution_id: str, event_types: Sequence[str], max_sequence: int
    ) -> list[ArchivedEvent]:
        """Applied events of these types up to ``max_sequence`` (the fork copies them)."""
        rows = await self.pool.fetch(
            f'SELECT topic, partition, "offset", raw FROM {self.tables.execution_events}'
            " WHERE execution_id = $1 AND outcome = 'applied' AND event_type = ANY($2::text[])"
            ' AND sequence <= $3 ORDER BY partition, "offset"',
            execution_id,
            list(event_types),
            max_sequence,
        )
        return [
            ArchivedEvent(Position(r["topic"], r["partition"], r["offset"]), envelope)
            for r in rows
            if (envelope := _decode(self.codec, r)) is not None
        ]


class _EmptyAfterSnapshot:
    """The ``EventArchive`` port of ``snapshots.Restorer`` answering no events: the
    restorer then only picks (and verifies) the newest usable snapshot, and the replay
    streams the events after it itself."""

    def __init__(self, archive: EventHistory) -> None:
        self._archive = archive

    async def events(
        self,
        execution_id: str,
        *,
        after: tuple[int, int] | None = None,
        before: tuple[int, int] | None = None,
        limit: int | None = None,
    ) -> Sequence[ArchivedEvent]:
        return ()

    async def first_after(self, execution_id: str, when: datetime) -> tuple[int, int] | None:
        return await self._archive.first_after(execution_id, when)

    async def checkpoint(self, checkpoint_id: str) -> tuple[str, int] | None:
        return await self._archive.checkpoint(checkpoint_id)


class LogReader:
    """Reads one execution's events from its partition of the pipeline topic.

    With ``bootstrap_servers`` a consumer reads the partition and skips other keys
    without decoding them; with only a started ``log`` (the process's ``EventLog``),
    records are read with ``log.read_range`` and filtered after decoding.
    """

    def __init__(
        self,
        topic: str,
        *,
        bootstrap_servers: str | None = None,
        log: EventLog | None = None,
        codec: EventCodec | None = None,
        batch_size: int = 2000,
        security: KafkaSecurity = PLAINTEXT,
    ) -> None:
        if bootstrap_servers is None and log is None:
            raise ValueError("LogReader needs bootstrap_servers or a started EventLog")
        self.topic = topic
        self.bootstrap_servers = bootstrap_servers
        self.log = log
        self.codec = codec or default_codec()
        self.batch_size = batch_size
        self.security = security
        self._settings = ConsumerSettings(
            client_id="orchestrator-replay", fetch_max_wait_ms=50, security=security
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
