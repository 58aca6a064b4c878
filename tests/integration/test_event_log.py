"""The Kafka event log against a real broker: topics, append, read back, poison records.

Each test works on topics of its own (a random prefix), so tests share nothing but the
broker started once per session by ``conftest.py``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider

from orchestrator.events import tracing
from orchestrator.events.catalogue import SharedVariableSet, TaskScheduled, TaskStarted
from orchestrator.events.codec import default_codec
from orchestrator.events.consumer import EventConsumer, RawRecord, TopicPartition, decode_records
from orchestrator.events.envelope import Envelope, Position
from orchestrator.events.errors import DecodeError, InvalidEvent
from orchestrator.events.log import BATCHED_FROM, EventLog, ProducerSettings
from orchestrator.events.topics import (
    TopicMismatch,
    TopicsConfig,
    TopicSpec,
    dlq_name,
    ensure_topics,
)
from orchestrator.events.userdata import encode_user_data
from tests.otel import installed

pytestmark = pytest.mark.integration


@pytest.fixture
def topics() -> TopicsConfig:
    """The default topic layout under a prefix no other test uses."""
    return TopicsConfig().with_prefix(f"test-{uuid.uuid4().hex[:10]}.")


@pytest.fixture
async def log(kafka: Any, topics: TopicsConfig) -> AsyncIterator[EventLog]:
    """An event log on fresh topics, idempotent if the broker allows it."""
    await ensure_topics(kafka.bootstrap_servers, topics.specs())
    async with EventLog(
        kafka.bootstrap_servers,
        default_codec(),
        topics=topics,
        supports_idempotence=kafka.supports_idempotence,
    ) as event_log:
        yield event_log


def _events(execution_id: str, count: int, first: int = 1) -> list[Envelope]:
    return [
        Envelope(
            execution_id=execution_id,
            pipeline_id="pipeline-1",
            sequence=seq,
            epoch=1,
            producer="node-a",
            payload=TaskStarted(
                task_id=f"task-{seq}", attempt=1, inputs=encode_user_data({"seq": seq})
            ),
        )
        for seq in range(first, first + count)
    ]


async def test_topics_are_created_then_verified(kafka: Any, topics: TopicsConfig) -> None:
    specs = topics.specs()
    created = await ensure_topics(kafka.bootstrap_servers, specs)
    assert sorted(created) == sorted(s.name for s in specs)
    assert dlq_name(topics.pipeline.name) in created
    # A second run finds them all as declared and creates nothing.
    assert await ensure_topics(kafka.bootstrap_servers, specs) == []


async def test_a_partition_mismatch_is_a_clear_error(kafka: Any, topics: TopicsConfig) -> None:
    await ensure_topics(kafka.bootstrap_servers, [topics.pipeline])
    wrong = TopicSpec(name=topics.pipeline.name, partitions=topics.pipeline.partitions + 1)
    with pytest.raises(TopicMismatch) as caught:
        await ensure_topics(kafka.bootstrap_servers, [wrong])
    error = caught.value
    assert (error.topic, error.setting) == (topics.pipeline.name, "partitions")
    assert (error.expected, error.actual) == (wrong.partitions, topics.pipeline.partitions)
    assert topics.pipeline.name in str(error) and str(wrong.partitions) in str(error)
    assert not error.retriable


async def test_more_replicas_than_brokers_is_a_clear_error(
    kafka: Any, topics: TopicsConfig
) -> None:
    spec = TopicSpec(name=topics.pipeline.name, partitions=1, replication_factor=99)
    with pytest.raises(TopicMismatch, match="replication_factor is 99, expected at most"):
        await ensure_topics(kafka.bootstrap_servers, [spec])
    # Nothing was created on the way.
    assert await ensure_topics(kafka.bootstrap_servers, [TopicSpec(name=spec.name)]) == [spec.name]


async def test_append_one_and_a_batch_then_read_them_back(log: EventLog) -> None:
    execution = str(uuid.uuid4())
    events = _events(execution, 6)
    first = await log.append(events[0])
    rest = await log.append_batch(events[1:])
    positions = [first, *rest]

    topic = log.topics.pipeline.name
    assert {p.topic for p in positions} == {topic}
    assert len({p.partition for p in positions}) == 1  # one execution, one partition
    assert [p.offset for p in positions] == list(range(first.offset, first.offset + 6))

    read = [item async for item in log.read_range(topic, first.partition)]
    assert [position for position, _ in read] == positions
    assert [envelope for _, envelope in read] == events
    # A sub-range, end exclusive.
    middle = [p async for p, _ in log.read_range(topic, first.partition, 2, 4)]
    assert middle == positions[2:4]


async def test_shared_state_events_go_to_the_shared_topic(log: EventLog) -> None:
    event = Envelope(
        execution_id=None,
        pipeline_id=None,
        sequence=None,
        epoch=0,
        payload=SharedVariableSet(
            namespace="team-a", name="budget", type="int", value=encode_user_data(5)
        ),
    )
    position = await log.append(event)
    assert position.topic == log.topics.shared.name
    read = [e async for _, e in log.read_range(position.topic, position.partition)]
    assert read == [event]


async def test_batches_of_many_executions_keep_each_execution_in_order(log: EventLog) -> None:
    executions = [str(uuid.uuid4()) for _ in range(20)]
    events = [e for batch in zip(*(_events(x, 50) for x in executions), strict=True) for e in batch]
    positions = await log.append_batch(events)
    by_execution: dict[str | None, list[Position]] = {}
    for event, position in zip(events, positions, strict=True):
        by_execution.setdefault(event.execution_id, []).append(position)
    for found in by_execution.values():
        assert found == sorted(found)
        assert len({p.partition for p in found}) == 1
    # Each returned position holds exactly the event appended there.
    stored = {
        position: envelope
        for partition in {p.partition for p in positions}
        async for position, envelope in log.read_range(log.topics.pipeline.name, partition)
    }
    assert [stored[p] for p in positions] == events


@pytest.mark.parametrize("producers", [1, 3])
async def test_appends_through_several_producers_keep_each_execution_in_order(
    kafka: Any, topics: TopicsConfig, producers: int
) -> None:
    """Partitions spread over ``producers`` connections (two requests in flight): every
    execution's events still land in its order, each at the position returned, whether
    appended one small batch at a time by many writers at once or in one large batch."""
    await ensure_topics(kafka.bootstrap_servers, topics.specs())
    async with EventLog(
        kafka.bootstrap_servers,
        default_codec(),
        ProducerSettings(producers=producers),
        topics=topics,
        supports_idempotence=kafka.supports_idempotence,
    ) as log:
        executions = [str(uuid.uuid4()) for _ in range(12)]

        async def writer(execution_id: str) -> list[tuple[Envelope, Position]]:
            out = []
            for first in range(1, 40, 3):  # record by record (below BATCHED_FROM)
                batch = _events(execution_id, 3, first)
                out += zip(batch, await log.append_batch(batch), strict=True)
            return out

        small = await asyncio.gather(*(writer(x) for x in executions))
        rows = zip(*(_events(x, 20, 40) for x in executions), strict=True)
        large = [e for batch in rows for e in batch]
        assert len(large) >= BATCHED_FROM
        appended = [pair for pairs in small for pair in pairs]
        appended += zip(large, await log.append_batch(large), strict=True)
        stored = {
            position: envelope
            for partition in range(topics.pipeline.partitions)
            async for position, envelope in log.read_range(log.topics.pipeline.name, partition)
        }
    assert len(stored) == len(appended) == 12 * 59
    assert all(stored[position] == event for event, position in appended)
    for execution_id in executions:
        mine = sorted((p, e.sequence) for p, e in stored.items() if e.execution_id == execution_id)
        assert len({p.partition for p, _ in mine}) == 1
        assert [seq for _, seq in mine] == list(range(1, 60))


async def test_an_invalid_event_raises_and_sends_nothing(log: EventLog) -> None:
    execution = str(uuid.uuid4())
    valid = _events(execution, 3)
    invalid = Envelope(
        execution_id=execution,
        pipeline_id="pipeline-1",
        sequence=4,
        epoch=1,
        payload=TaskScheduled(task_id=12345),  # type: ignore[arg-type]  # the point
    )
    before = await log.end_offsets()
    with pytest.raises(InvalidEvent) as caught:
        await log.append_batch([*valid, invalid])
    assert "task_id" in caught.value.field
    assert "task_id" in str(caught.value)
    assert await log.end_offsets() == before


async def test_garbage_bytes_raise_decode_error_naming_where(log: EventLog) -> None:
    topic = log.topics.pipeline.name
    execution = str(uuid.uuid4())
    good = await log.append(_events(execution, 1)[0])
    bad = await log.append_raw(topic, b"\x00not an event", key=execution.encode())
    assert bad.partition == good.partition

    with pytest.raises(DecodeError) as caught:
        async for _ in log.read_range(topic, good.partition):
            pass
    error = caught.value
    assert (error.topic, error.partition, error.offset) == (topic, bad.partition, bad.offset)
    assert f"{topic}[{bad.partition}]@{bad.offset}" in str(error)

    # The raw view (the DLQ path) reads the same records undecoded.
    raw = [item async for item in log.read_range_raw(topic, good.partition)]
    assert [p for p, _ in raw] == [good, bad]
    assert raw[1][1] == b"\x00not an event"


async def test_idempotent_producer_is_used_when_the_broker_supports_it(
    kafka: Any, topics: TopicsConfig
) -> None:
    if not kafka.supports_idempotence:
        pytest.skip(f"{getattr(kafka, 'description', 'this broker')} has no idempotent producer")
    await ensure_topics(kafka.bootstrap_servers, [topics.pipeline])
    # supports_idempotence=None: the log asks the broker itself.
    async with EventLog(kafka.bootstrap_servers, default_codec(), topics=topics) as probing:
        assert probing.idempotent
        await probing.append(_events(str(uuid.uuid4()), 1)[0])


async def test_without_idempotence_the_log_warns_and_still_appends(
    kafka: Any, topics: TopicsConfig, caplog: pytest.LogCaptureFixture
) -> None:
    await ensure_topics(kafka.bootstrap_servers, [topics.pipeline])
    caplog.set_level(logging.WARNING, logger="orchestrator.events.log")
    async with EventLog(
        kafka.bootstrap_servers, default_codec(), topics=topics, supports_idempotence=False
    ) as plain:
        assert not plain.idempotent
        events = _events(str(uuid.uuid4()), 3)
        positions = await plain.append_batch(events)
        read = [e async for _, e in plain.read_range(topics.pipeline.name, positions[0].partition)]
        assert read == events
    assert any("sequence check" in r.getMessage() for r in caplog.records)


async def _read(kafka: Any, start: Position, count: int, *, max_records: int) -> list[RawRecord]:
    """``count`` raw records of ``start``'s partition from ``start``, in batches of at
    most ``max_records``."""
    tp = TopicPartition(start.topic, start.partition)
    got: list[RawRecord] = []
    async with EventConsumer(kafka.bootstrap_servers) as consumer:
        consumer.assign([tp])
        consumer.seek(tp, start.offset)
        async with asyncio.timeout(30):
            async for batch in consumer.batches(max_records=max_records, timeout_ms=200):
                assert len(batch) <= max_records
                got.extend(batch)
                if len(got) >= count:
                    break
    return got


async def test_consumer_reads_assigned_partitions_in_batches(log: EventLog, kafka: Any) -> None:
    execution = str(uuid.uuid4())
    events = _events(execution, 10)
    positions = await log.append_batch(events)
    got = await _read(kafka, positions[3], 7, max_records=4)
    decoded = decode_records(default_codec(), got)
    assert [d.position for d in decoded] == positions[3:]
    assert [d.envelope for d in decoded] == events[3:]
    assert all(d.error is None for d in decoded)


async def test_consumer_group_listener_seeks_on_assignment(log: EventLog, kafka: Any) -> None:
    positions = await log.append_batch(_events(str(uuid.uuid4()), 5))
    tp = TopicPartition(positions[0].topic, positions[0].partition)
    consumer = EventConsumer(kafka.bootstrap_servers, group_id=f"g-{uuid.uuid4().hex[:8]}")

    class SeekToStored:
        """Seeks to a stored offset as the projection runtime will (here: the third event)."""

        def __init__(self) -> None:
            self.assigned: set[TopicPartition] = set()

        async def on_partitions_revoked(self, revoked: frozenset[TopicPartition]) -> None:
            self.assigned -= revoked

        async def on_partitions_assigned(self, assigned: frozenset[TopicPartition]) -> None:
            self.assigned |= assigned
            for partition in assigned:
                consumer.seek(partition, positions[2].offset if partition == tp else 0)

    listener = SeekToStored()
    async with consumer:
        consumer.subscribe([tp.topic], listener)
        got: list[RawRecord] = []
        async with asyncio.timeout(60):
            while len(got) < 3:
                got.extend(await consumer.getmany(timeout_ms=500))
        assert [r.position for r in got] == positions[2:]
        assert listener.assigned == consumer.assignment()
        await consumer.commit({tp: positions[-1].offset + 1})


async def test_a_batched_append_carries_the_trace_context_on_every_record(
    log: EventLog, kafka: Any
) -> None:
    # BATCHED_FROM events or more take the path that builds its own record batches.
    events = _events(str(uuid.uuid4()), BATCHED_FROM + 8)
    with installed(TracerProvider()), tracing.span("caller"):
        traceparent = tracing.current_traceparent()
        positions = await log.append_batch(events)
    first = positions[0]
    expected = [
        Position(first.topic, first.partition, first.offset + i) for i in range(len(events))
    ]
    assert positions == expected
    assert len(set(positions)) == len(events) and positions[-1].token() == expected[-1].token()
    got = await _read(kafka, positions[0], len(events), max_records=100)
    assert [d.envelope for d in decode_records(default_codec(), got)] == events
    assert traceparent is not None
    # The append's own span (a child of the caller's): one trace id, one parent for all.
    sent = {dict(r.headers)["traceparent"].decode() for r in got}
    assert len(sent) == 1
    assert sent.pop().split("-")[1] == traceparent.split("-")[1]
