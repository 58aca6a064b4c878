"""The processor as a consumer-group member: rebalances, fencing, notifications.

- Members join and leave mid-stream: every event is applied exactly once.
- A member that lost a partition without noticing cannot write it (the fence).
- A batch folded ahead, on top of the batch being written, writes what one batch at a
  time would, and nothing when the batch under it was fenced off.
- A commit NOTIFYs the changed executions, and ``wait_for_position`` sees an append.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import _projector_support as support
import asyncpg
import pytest

from orchestrator.events.codec import default_codec
from orchestrator.events.consumer import RawRecord
from orchestrator.projections import open_pool
from orchestrator.projections._engine import BatchEngine
from orchestrator.projections.deadletters import DeadLetterSink
from orchestrator.projections.positions import wait_for_position
from orchestrator.projections.processor import Projector
from orchestrator.projections.store import STATE_CHANGES_CHANNEL


@pytest.mark.timeout(180)
async def test_members_joining_and_leaving_lose_and_duplicate_nothing(
    kafka: Any, make_projection: support.MakeProjection
) -> None:
    bootstrap = kafka.bootstrap_servers
    events = support.mixed(support.histories(300, seed=11), seed=12)
    half = len(events) // 2
    topics, settings, dsn = await make_projection(
        6, name="rebalance", batch_size=200, session_timeout_ms=6000
    )
    async with support.event_log(bootstrap, topics, kafka.supports_idempotence) as log:
        await support.produce(log, events[:half])
        first = Projector(settings, dsn, bootstrap)
        second = Projector(settings, dsn, bootstrap)
        await first.start()
        first_run = asyncio.create_task(first.run())

        async def progressed() -> bool:
            return await support.applied_total(dsn, settings.name) >= half // 4

        await support.wait_until(progressed, 60, "the first member to start folding")
        await second.start()  # joins mid-stream: a rebalance while records flow
        second_run = asyncio.create_task(second.run())

        async def second_assigned() -> bool:
            return bool(second.positions)

        await support.wait_until(second_assigned, 60, "the second member to get partitions")

        async def write_second_half() -> None:
            for i in range(half, len(events), 250):
                await support.produce(log, events[i : i + 250])
                await asyncio.sleep(0.05)

        writer = asyncio.create_task(write_second_half())

        async def second_working() -> bool:
            return second.records > 0

        await support.wait_until(second_working, 60, "the second member to fold something")
        first.request_stop()  # leaves mid-stream: the second takes every partition
        await first_run
        await first.stop()
        await writer

        await support.wait_applied(dsn, settings.name, len(events), 90, "every event to be applied")
        second.request_stop()
        await second_run
        await second.stop()

    assert first.records > 0 and second.records > 0
    assert first.records + second.records == len(events)  # each committed exactly once
    assert await support.compare_with_fold(dsn, support.by_execution(events), settings) == []


def _raw_records(positions: list[Any], events: list[Any]) -> list[RawRecord]:
    codec = default_codec()
    return [
        RawRecord(position=p, key=e.key(), value=codec.encode(e), timestamp_ms=0)
        for p, e in zip(positions, events, strict=True)
    ]


@dataclass
class _Contest:
    """Two engines that both claimed partition ``tp``: ``owner`` took it after ``stale``."""

    tp: tuple[str, int]
    records: list[RawRecord]
    stale: BatchEngine
    owner: BatchEngine
    pool: asyncpg.Pool

    async def archived(self) -> int:
        async with self.pool.acquire() as conn:
            count: int = await conn.fetchval("SELECT count(*) FROM execution_events")
        return count


@asynccontextmanager
async def _contest(
    kafka: Any, make_projection: support.MakeProjection, name: str, seed: int
) -> AsyncIterator[_Contest]:
    """A contest over one partition; on the way out, the read model must equal the fold."""
    events = support.mixed(support.histories(5, seed=seed), seed=seed + 1)
    topics, settings, dsn = await make_projection(1, name=name)
    tp = (topics.pipeline.name, 0)
    async with support.event_log(
        kafka.bootstrap_servers, topics, kafka.supports_idempotence
    ) as log:
        records = _raw_records(await log.append_batch(events), events)
        pool = await open_pool(dsn, max_size=4)
        try:
            codec = default_codec()
            stale = BatchEngine(settings, pool, codec, DeadLetterSink(settings, log))
            owner = BatchEngine(settings, pool, codec, DeadLetterSink(settings, log))
            assert await stale.claim([tp]) == {tp: 0}
            assert await owner.claim([tp]) == {tp: 0}  # the partition moved on
            yield _Contest(tp, records, stale, owner, pool)
        finally:
            await pool.close()
    assert await support.compare_with_fold(dsn, support.by_execution(events), settings) == []


async def test_a_member_that_lost_its_partition_cannot_write_it(
    kafka: Any, make_projection: support.MakeProjection
) -> None:
    async with _contest(kafka, make_projection, "fenced", seed=21) as c:
        assert (await c.owner.process(c.records[:10])).committed
        fenced = await c.stale.process(c.records[:20])
        assert not fenced.committed
        assert fenced.seek == {c.tp: 10}  # re-read from what the owner stored
        assert await c.archived() == 10  # nothing of the stale batch was written

        # Having re-read the stored offset, it continues exactly where the owner was.
        assert (await c.stale.process(c.records[10:])).committed


async def test_a_batch_staged_ahead_is_folded_on_the_batch_being_written(
    kafka: Any, make_projection: support.MakeProjection
) -> None:
    """The processor folds batch N+1 while N is written: the read model is the same as
    one batch at a time, including executions that span both batches."""
    bootstrap = kafka.bootstrap_servers
    events = support.mixed(
        support.histories(40, seed=41), seed=42
    )  # executions span every cut below
    topics, settings, dsn = await make_projection(2, name="ahead")
    async with support.event_log(bootstrap, topics, kafka.supports_idempotence) as log:
        records = _raw_records(await log.append_batch(events), events)
        pool = await open_pool(dsn, max_size=4)
        try:
            engine = BatchEngine(settings, pool, default_codec(), DeadLetterSink(settings, log))
            await engine.claim({(r.position.topic, r.position.partition) for r in records})
            third = len(records) // 3
            first = await engine.stage(records[:third])
            assert first is not None
            second = await engine.stage(records[third : 2 * third], ahead=first)
            assert second is not None
            writing = asyncio.create_task(engine.commit(first))
            third_batch = await engine.stage(records[2 * third :], ahead=second)
            assert third_batch is not None
            assert (await writing).clean
            assert (await engine.commit(second)).clean
            assert (await engine.commit(third_batch)).clean
        finally:
            await pool.close()
    assert await support.applied_total(dsn, settings.name) == len(events)
    assert await support.compare_with_fold(dsn, support.by_execution(events), settings) == []


async def test_a_batch_staged_on_a_fenced_off_batch_writes_nothing(
    kafka: Any, make_projection: support.MakeProjection
) -> None:
    async with _contest(kafka, make_projection, "ahead_fenced", seed=43) as c:
        under = await c.stale.stage(c.records[:10])
        assert under is not None
        over = await c.stale.stage(c.records[10:20], ahead=under)
        assert over is not None

        assert (await c.owner.process(c.records[:15])).committed
        assert not (await c.stale.commit(under)).committed
        refused = await c.stale.commit(over)
        assert not refused.committed
        assert refused.seek == {c.tp: 15}  # from what the owner stored
        assert await c.archived() == 15

        assert (await c.stale.process(c.records[15:])).committed


async def test_commits_notify_and_wait_for_position_sees_an_append(
    kafka: Any, make_projection: support.MakeProjection
) -> None:
    bootstrap = kafka.bootstrap_servers
    hist = support.histories(3, seed=31)
    topics, settings, dsn = await make_projection(2, name="notify")
    listener = await asyncpg.connect(dsn)
    changed: asyncio.Queue[list[str]] = asyncio.Queue()
    await listener.add_listener(
        STATE_CHANGES_CHANNEL, lambda *args: changed.put_nowait(json.loads(args[3]))
    )
    pool = await open_pool(dsn, max_size=4)
    projector = Projector(settings, dsn, bootstrap)
    try:
        async with support.event_log(bootstrap, topics, kafka.supports_idempotence) as log:
            first = await log.append_batch(next(iter(hist.values())))
            # Not applied yet (no processor): a short wait says so.
            assert not await wait_for_position(pool, settings.name, first[-1], 0.3)
            await projector.start()
            run = asyncio.create_task(projector.run())
            assert await wait_for_position(pool, settings.name, first[-1], 30)
            seen: set[str] = set()
            while next(iter(hist)) not in seen:
                seen.update(await asyncio.wait_for(changed.get(), 10))
            # Read-your-writes on another execution, through a plain connection too.
            last = (await log.append_batch(list(hist.values())[1]))[-1]
            conn = await asyncpg.connect(dsn)
            try:
                assert await wait_for_position(conn, settings.name, last, 30)
                row = await conn.fetchrow(
                    "SELECT last_sequence FROM pipeline_states WHERE execution_id = $1",
                    list(hist)[1],
                )
            finally:
                await conn.close()
            assert row is not None and row["last_sequence"] > 0
            projector.request_stop()
            await run
    finally:
        await projector.stop()
        await pool.close()
        await listener.close()
