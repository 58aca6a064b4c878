"""The seed's ``event_store.topics.task_events``: a feed of every task event, derived
from the pipeline topic, exactly once for ``read_committed`` readers, in each
execution's order, even when the feed is stopped mid-batch again and again."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from pathlib import Path
from typing import Any

import aiokafka
import pytest
from _connect_support import write_config

import orchestrator
from orchestrator import Pipeline
from orchestrator.events.catalogue import TaskStarted
from orchestrator.events.codec import default_codec
from orchestrator.events.envelope import Envelope
from orchestrator.events.task_feed import TASK_EVENTS, TaskFeed, TaskFeedSettings

pytestmark = pytest.mark.integration


async def _committed(bootstrap: str, topic: str) -> list[tuple[int, Any]]:
    """(partition, envelope) of every committed record of ``topic``, per partition in order."""
    consumer = aiokafka.AIOKafkaConsumer(
        topic,  # no group: every partition of the topic, from the beginning
        bootstrap_servers=bootstrap,
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    codec = default_codec()
    out: list[tuple[int, Any]] = []
    try:
        while True:
            fetched = await consumer.getmany(timeout_ms=500)
            for tp, records in fetched.items():
                out.extend((tp.partition, codec.decode(r.value)) for r in records)
            parts = list(consumer.assignment())
            if not parts:
                continue
            ends = await consumer.end_offsets(parts)
            positions = [await consumer.position(tp) for tp in parts]
            if all(pos >= ends[tp] for pos, tp in zip(positions, parts, strict=True)):
                return out
    finally:
        await consumer.stop()


async def test_task_events_reach_their_topic_once_in_order(
    kafka: Any, connect_env: dict[str, str], tmp_path: Path, topic: str
) -> None:
    env = connect_env
    pipeline = Pipeline(f"feed-{uuid.uuid4().hex[:8]}")

    @pipeline.task()
    async def first(context: Any) -> int:
        return 1

    @pipeline.task(depends_on=["first"])
    async def second(first: int) -> int:
        return first + 1

    config = write_config(tmp_path, topic, event_store=f"      task_events: {topic}.tasks\n")
    async with orchestrator.connect(config=config, environ=env) as state:
        runs = [await state.run(pipeline, {"n": i}) for i in range(3)]
        assert all(r.status == "completed" for r in runs)
        log_events = [
            e
            for p in range(2)
            async for _, e in state.runtime.log.read_range(f"{topic}.pipeline", p)
            if e.event_type in TASK_EVENTS
        ]
        fed: list[tuple[int, Any]] = []
        for _ in range(100):  # the feed runs beside the processor: wait for it
            fed = await _committed(kafka.bootstrap_servers, f"{topic}.tasks")
            if len(fed) >= len(log_events):
                break
            await asyncio.sleep(0.2)
    assert sorted(e.event_id for _, e in fed) == sorted(e.event_id for e in log_events)
    assert {e.event_type for _, e in fed} <= TASK_EVENTS
    for run in runs:  # one execution's task events: in its order on the log
        mine = [e.event_id for _, e in fed if e.execution_id == run.execution_id]
        assert mine == [e.event_id for e in log_events if e.execution_id == run.execution_id]
        assert {e.event_type for _, e in fed if e.execution_id == run.execution_id} == {
            "TaskScheduled",
            "TaskStarted",
            "TaskCompleted",
        }


async def test_a_feed_stopped_mid_batch_again_and_again_copies_each_event_once(
    kafka: Any, make_topic: Any
) -> None:
    """The feed is cancelled at random points while events arrive; each restart goes on
    from the offsets its last committed transaction carried."""
    source = await make_topic(partitions=2)
    feed_topic = await make_topic(partitions=2)
    codec = default_codec()
    producer = aiokafka.AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all")
    await producer.start()
    settings = TaskFeedSettings(
        source_topic=source, feed_topic=feed_topic, group_id=f"feed-{uuid.uuid4().hex[:8]}"
    )
    expected: list[str] = []
    try:
        for round_ in range(6):
            feed = TaskFeed(kafka.bootstrap_servers, codec, settings)
            running = asyncio.create_task(feed.run())
            for envelope in _task_events(40, round_):
                await producer.send_and_wait(source, codec.encode(envelope), key=envelope.key())
                expected.append(envelope.event_id)
            await asyncio.sleep(0.3 + 0.2 * (round_ % 3))
            running.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await running
        stop = asyncio.Event()
        last = TaskFeed(kafka.bootstrap_servers, codec, settings)
        running = asyncio.create_task(last.run(stop))
        fed: list[tuple[int, Any]] = []
        for _ in range(150):
            fed = await _committed(kafka.bootstrap_servers, feed_topic)
            if len(fed) >= len(expected):
                break
            await asyncio.sleep(0.2)
        stop.set()
        await running
    finally:
        await producer.stop()
    ids = [e.event_id for _, e in fed]
    assert len(ids) == len(set(ids)) == len(expected)
    assert set(ids) == set(expected)


def _task_events(count: int, round_: int) -> list[Envelope]:
    """``count`` TaskStarted events over four executions, interleaved."""
    return [
        Envelope(
            execution_id=f"exec_feed_{round_}_{i % 4}",
            pipeline_id="feed",
            sequence=i // 4,
            epoch=1,
            payload=TaskStarted(task_id=f"t{i}", attempt=1, node_id="n"),
        )
        for i in range(count)
    ]
