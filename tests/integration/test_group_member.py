"""The one consumer-group member (``events.group``) that the processor, the snapshotter,
the Redis processor and the task feed share, against a real broker; and the one
fencing rule of their PostgreSQL offsets (``projections.offsets``)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import aiokafka
import asyncpg
import pytest

from orchestrator.events import (
    BatchHandler,
    ConsumerSettings,
    Fenced,
    GroupMember,
    MemberSettings,
    RawRecord,
    TopicPartition,
)
from orchestrator.projections import PostgresOffsets

pytestmark = pytest.mark.integration


class _Handler(BatchHandler):
    """Stored offsets in a dict; records kept; failures scripted."""

    def __init__(
        self,
        stored: dict[TopicPartition, int],
        transient: Callable[[BaseException], bool] = lambda _e: False,
    ) -> None:
        self.stored = stored
        self.transient = transient
        self.claims: list[frozenset[TopicPartition]] = []
        self.claim_failures: list[Exception] = []
        self.handle_failures: list[Exception] = []
        self.seen: list[tuple[int, int]] = []
        self.member: GroupMember | None = None

    def is_transient(self, exc: BaseException) -> bool:
        return self.transient(exc)

    async def claim(self, tps: frozenset[TopicPartition]) -> Mapping[TopicPartition, int]:
        self.claims.append(tps)
        if self.claim_failures:
            raise self.claim_failures.pop(0)
        return {tp: self.stored[tp] for tp in tps if tp in self.stored}

    async def handle(self, records: list[RawRecord]) -> None:
        if records and self.handle_failures:
            raise self.handle_failures.pop(0)
        for r in records:
            self.seen.append((r.position.partition, r.position.offset))
            tp = TopicPartition(r.position.topic, r.position.partition)
            self.stored[tp] = r.position.offset + 1


async def _produce(bootstrap: str, topic: str, per_partition: int, partitions: int) -> None:
    producer = aiokafka.AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for p in range(partitions):
            for i in range(per_partition):
                await producer.send_and_wait(topic, f"{p}-{i}".encode(), partition=p)
    finally:
        await producer.stop()


def _member(bootstrap: str, topic: str, handler: _Handler) -> GroupMember:
    settings = MemberSettings(
        group_id=f"member-{uuid.uuid4().hex[:8]}",
        topics=[topic],
        consumer=ConsumerSettings(
            client_id="test-member", fetch_max_wait_ms=50, metadata_max_age_ms=1000
        ),
        batch_size=100,
        poll_timeout_ms=100,
        lag_metric=False,
    )
    member = GroupMember(bootstrap, settings, handler)
    handler.member = member
    return member


async def _run_until(member: GroupMember, done: Callable[[], bool]) -> None:
    async def stopper() -> None:
        while not done():  # noqa: ASYNC110 - polling what the handler saw
            await asyncio.sleep(0.05)
        member.request_stop()

    async with member, asyncio.timeout(90):
        await asyncio.gather(member.run(), stopper())


async def test_each_partition_is_read_from_the_offset_its_claim_returns(
    kafka: Any, make_topic: Any
) -> None:
    topic = await make_topic(partitions=2)
    await _produce(kafka.bootstrap_servers, topic, 5, 2)
    handler = _Handler({TopicPartition(topic, 0): 3, TopicPartition(topic, 1): 1})
    member = _member(kafka.bootstrap_servers, topic, handler)
    await _run_until(member, lambda: len(handler.seen) >= 6)
    assert sorted(handler.seen) == [(0, 3), (0, 4), (1, 1), (1, 2), (1, 3), (1, 4)]


async def test_a_claim_failing_in_the_rebalance_callback_stops_the_loop_with_its_error(
    kafka: Any, make_topic: Any
) -> None:
    """aiokafka drops what a rebalance callback raises; the member's loop raises it."""
    topic = await make_topic(partitions=1)
    handler = _Handler({})
    handler.claim_failures.append(ValueError("the offsets table is corrupt"))
    member = _member(kafka.bootstrap_servers, topic, handler)
    async with member, asyncio.timeout(90):
        with pytest.raises(ValueError, match="corrupt"):
            await member.run()


async def test_an_outage_during_the_claim_is_ridden_out_then_the_partitions_are_read(
    kafka: Any, make_topic: Any
) -> None:
    topic = await make_topic(partitions=1)
    await _produce(kafka.bootstrap_servers, topic, 4, 1)
    handler = _Handler({TopicPartition(topic, 0): 2}, lambda e: isinstance(e, ConnectionError))
    handler.claim_failures += [ConnectionError("store down"), ConnectionError("still down")]
    member = _member(kafka.bootstrap_servers, topic, handler)
    await _run_until(member, lambda: len(handler.seen) >= 2)
    assert handler.seen == [(0, 2), (0, 3)]  # never from 0: nothing read before a claim
    assert len(handler.claims) >= 3


async def test_a_fenced_batch_is_read_again_from_the_stored_offsets(
    kafka: Any, make_topic: Any
) -> None:
    topic = await make_topic(partitions=1)
    await _produce(kafka.bootstrap_servers, topic, 3, 1)
    handler = _Handler({TopicPartition(topic, 0): 0})
    handler.handle_failures.append(Fenced([(topic, 0)]))
    member = _member(kafka.bootstrap_servers, topic, handler)
    await _run_until(member, lambda: len(handler.seen) >= 3)
    assert handler.seen == [(0, 0), (0, 1), (0, 2)]
    assert len(handler.claims) >= 2  # the fence made it claim the partition again


async def test_one_fence_for_every_group_a_rebuild_swap_or_another_writer_stops_a_stale_one(
    dsn: str,
) -> None:
    """The processor and the snapshotter share this store and its rule."""
    group = f"fence-{uuid.uuid4().hex[:8]}"
    tp = ("t", 0)
    conn = await asyncpg.connect(dsn)
    try:
        old, new = PostgresOffsets(group), PostgresOffsets(group)
        seen_by_old = (await old.claim(conn, [tp], {tp: 7}))[tp]
        assert seen_by_old == (7, 0)
        seen_by_new = (await new.claim(conn, [tp]))[tp]
        async with conn.transaction():  # the new owner writes
            stale, _ = await new.check(conn, {tp: seen_by_new})
            assert stale == []
            await new.advance(conn, {tp: 9})
        async with conn.transaction():  # the old one, not told, is refused
            stale, stored = await old.check(conn, {tp: seen_by_old})
        assert stale == [tp] and stored[tp] == (9, 0)
        await conn.execute(  # what a rebuild swap does
            "UPDATE projection_offsets SET generation = generation + 1 WHERE projection = $1",
            group,
        )
        async with conn.transaction():
            stale, _ = await new.check(conn, {tp: (9, 0)})
        assert stale == [tp]
    finally:
        await conn.close()
