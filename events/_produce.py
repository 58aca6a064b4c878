"""Handing encoded records to aiokafka's producer, fast, and mapping acks to positions.

Two paths, chosen by ``EventLog.append_batch``:

- :func:`send_each`: one ``producer.send`` per record. aiokafka merges records from
  every concurrent caller into its per-partition batches, so many small appends from
  many coroutines still travel together. Costs a future per record.
- :func:`send_batched`: records grouped by partition into ``BatchBuilder`` batches,
  one ``send_batch`` each; an ack gives the batch's base offset and a record's offset
  is base + its index. About twice the throughput for large batches (measured with
  ``bench/append.py``), but a batch is never merged with other callers' records.

Only these large batches are compressed (``ProducerSettings.compression_type``): the
producer itself sends uncompressed. A small batch (one task transition, one checkpoint
whose data is compressed already) gains nothing from it, and aiokafka makes a new zstd
context per batch: ~100 µs, the largest single CPU item of a 10-task pipeline.

Both keep one key's records in their order: a key maps to one partition, a partition
to one producer (``producers[partition % len(producers)]``, see
``ProducerSettings.producers``), records enter that partition's queue in order, and
aiokafka sends a partition's batches in queue order. Partitions are computed here
(murmur2, as aiokafka and the Java client do), with a cache: aiokafka's pure-Python
murmur2 costs ~10 µs per record.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from aiokafka.errors import KafkaTimeoutError
from aiokafka.partitioner import murmur2
from aiokafka.producer.message_accumulator import BatchBuilder
from aiokafka.record.default_records import DefaultRecordBatch

from orchestrator.events._kafka import log_error, translated
from orchestrator.events._slots import constructor
from orchestrator.events.envelope import Position
from orchestrator.events.errors import LogError

logger = logging.getLogger(__name__)

Record = tuple[str, bytes | None, bytes]
"""(topic, key, value) of one encoded record."""

RECORD_OVERHEAD = 128
"""Upper bound of a record's framing inside a batch (varints, headers count, attributes)."""

CODECS = {
    None: DefaultRecordBatch.CODEC_NONE,
    "gzip": DefaultRecordBatch.CODEC_GZIP,
    "snappy": DefaultRecordBatch.CODEC_SNAPPY,
    "lz4": DefaultRecordBatch.CODEC_LZ4,
    "zstd": DefaultRecordBatch.CODEC_ZSTD,
}
"""A ``compression_type`` name to the record batch attribute aiokafka writes."""


class KeyPartitioner:
    """Key to partition exactly as the default partitioner computes it, cached."""

    def __init__(self, max_entries: int = 100_000) -> None:
        self._max_entries = max_entries
        self._tables: dict[int, dict[bytes, int]] = {}

    def __call__(self, key: bytes, partitions: int) -> int:
        found = self.table(partitions).get(key)
        return self.compute(key, partitions) if found is None else found

    def table(self, partitions: int) -> dict[bytes, int]:
        """The cached partitions of keys for a topic of ``partitions`` (a hot loop's
        look-up: ``table.get(key)``, then :meth:`compute` for a miss or partition 0)."""
        found = self._tables.get(partitions)
        if found is None:
            found = self._tables[partitions] = {}
        return found

    def compute(self, key: bytes, partitions: int) -> int:
        """murmur2 of ``key`` modulo ``partitions``, remembered."""
        table = self.table(partitions)
        if len(table) >= self._max_entries:
            table.clear()
        found: int = (murmur2(key) & 0x7FFFFFFF) % partitions
        table[key] = found
        return found


def too_large(index: int, topic: str, size: int, max_request_size: int) -> LogError:
    """The refusal of record ``index`` (``size`` bytes with its framing) before any send."""
    return LogError(
        f"record {index} for {topic} is ~{size} bytes, above max_request_size "
        f"{max_request_size}: claim-check large user data instead",
        retriable=False,
    )


def check_sizes(records: Sequence[Record], max_request_size: int) -> None:
    """Refuse, before anything is sent, a record the broker would refuse anyway."""
    for index, (topic, key, value) in enumerate(records):
        size = len(value) + len(key or b"") + RECORD_OVERHEAD
        if size > max_request_size:
            raise too_large(index, topic, size, max_request_size)


def lane(producers: Sequence[Any], partition: int | None) -> Any:
    """The producer that sends ``partition``'s records (a keyless record: the first)."""
    return producers[0] if partition is None else producers[partition % len(producers)]


async def _partition_counts(producer: Any, records: Sequence[Record]) -> dict[str, int]:
    """Partitions per topic of ``records``: from the producer's metadata when it knows the
    topic (every append but the first), else awaited (a hot path: once per append)."""
    cluster = producer.client.cluster
    counts: dict[str, int] = {}
    for topic, _, _ in records:
        if topic not in counts:
            known = cluster.partitions_for_topic(topic)
            if known is None:
                known = await producer.partitions_for(topic)
            counts[topic] = len(known)
    return counts


async def send_each(
    producers: Sequence[Any],
    partitioner: KeyPartitioner,
    records: Sequence[Record],
    *,
    what: str,
    headers: list[tuple[str, bytes]] | None = None,
) -> list[Position]:
    """One ``send`` per record, then await every ack; positions in record order."""
    futures: list[asyncio.Future[Any]] = []
    try:
        with translated(what):
            counts = await _partition_counts(producers[0], records)
            for topic, key, value in records:
                partition = None if key is None else partitioner(key, counts[topic])
                producer = lane(producers, partition)
                futures.append(
                    await producer.send(topic, value, key=key, partition=partition, headers=headers)
                )
    except BaseException:
        _observe_all(futures)
        raise
    positions: list[Position] = []
    for result in await asyncio.gather(*futures, return_exceptions=True):
        if isinstance(result, BaseException):
            raise log_error(result, what) from result
        positions.append(Position(result.topic, result.partition, result.offset))
    return positions


async def send_batched(
    producers: Sequence[Any],
    partitioner: KeyPartitioner,
    records: Sequence[Record],
    *,
    what: str,
    timeout_ms: int,
    batch_size: int,
    codec: int = DefaultRecordBatch.CODEC_NONE,
    headers: list[tuple[str, bytes]] | None = None,
) -> list[Position]:
    """Records grouped into per-partition batches of ``batch_size`` bytes, compressed with
    ``codec`` (:data:`CODECS`); positions in record order.

    ``timeout_ms`` bounds the wait for room in the producer's queues; ``headers`` go
    on every record (the trace context).
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_ms / 1000
    # One pass: each record goes into its partition's open batch; a full batch is
    # handed over at once (a partition's batches in order) and a new one opened.
    # Per topic: (key -> partition cache, partition count, partition -> open batch).
    topics: dict[str, tuple[dict[bytes, int], int, dict[int, tuple[Any, list[int]]]]] = {}
    sent: list[tuple[asyncio.Future[Any], list[int]]] = []
    try:
        with translated(what):
            counts = await _partition_counts(producers[0], records)
            for topic, n in counts.items():
                topics[topic] = (partitioner.table(n), n, {})
            for index, (topic, key, value) in enumerate(records):
                table, n, open_batches = topics[topic]
                key_bytes = key or b""
                partition = table.get(key_bytes)
                if partition is None:
                    partition = partitioner.compute(key_bytes, n)
                found = open_batches.get(partition)
                if found is None:
                    found = open_batches[partition] = (BatchBuilder(batch_size, codec), [])
                batch, members = found
                if batch.append(key=key, value=value, timestamp=None, headers=headers) is None:
                    future = await _enqueue(
                        lane(producers, partition), batch, topic, partition, deadline
                    )  # full
                    sent.append((future, members))
                    batch, members = open_batches[partition] = (BatchBuilder(batch_size, codec), [])
                    batch.append(key=key, value=value, timestamp=None, headers=headers)  # fits
                members.append(index)
            for topic, (_, _, open_batches) in topics.items():
                for partition, (batch, members) in open_batches.items():
                    future = await _enqueue(
                        lane(producers, partition), batch, topic, partition, deadline
                    )
                    sent.append((future, members))
    except BaseException:
        _observe_all([future for future, _ in sent])
        raise
    positions: list[Position | None] = [None] * len(records)
    acks = await asyncio.gather(*(future for future, _ in sent), return_exceptions=True)
    for ack, (_, members) in zip(acks, sent, strict=True):
        if isinstance(ack, BaseException):
            raise log_error(ack, what) from ack
        topic, partition, base = ack.topic, ack.partition, ack.offset
        for offset, index in enumerate(members, base):
            positions[index] = _position(topic, partition, offset)
    return [p for p in positions if p is not None]


# A batched append builds a Position per record; the frozen dataclass's __init__ was
# ~5% of the append bench's samples in py-spy (see ``events._slots``).
_position = constructor(Position)


async def _enqueue(
    producer: Any, batch: Any, topic: str, partition: int, deadline: float
) -> asyncio.Future[Any]:
    """``send_batch``, waiting up to ``deadline`` for the partition's queue to have room.

    aiokafka 0.14's ``add_batch`` subtracts the *total* time waited on every turn of its
    wait loop, so with several writers on one partition it gives up long before its
    timeout. A batch refused that way was never queued: offering it again is safe.
    """
    loop = asyncio.get_running_loop()
    while True:
        try:
            future: asyncio.Future[Any] = await producer.send_batch(
                batch, topic, partition=partition
            )
            return future
        except KafkaTimeoutError:
            if loop.time() >= deadline:
                raise


def _observe_all(futures: Sequence[asyncio.Future[Any]]) -> None:
    """Records already handed over still travel: observe their outcome without waiting,
    so no "exception was never retrieved" is left behind and the raise is not delayed."""
    for future in futures:
        future.add_done_callback(_observe)


def _observe(future: asyncio.Future[Any]) -> None:
    if not future.cancelled() and future.exception() is not None:
        logger.debug("append abandoned after an error: %s", future.exception())
