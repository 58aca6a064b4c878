"""The Redis read model equals the fold of the log, exactly once, on a real Redis.

Events are appended to real Kafka; ``RedisProjector`` (the processor of
``backend: "redis"``) folds them into a real Redis (standalone, and the 3-node
cluster with ``cluster_mode``): every execution's hash must equal the pure fold of
its events, duplicates included, and terminal executions expire per
``ttl.completed_states``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import _projector_support as support
from _redis_support import applied_total, compare_with_fold, fresh_store

from orchestrator.projections.redisprojector import RedisProjector

PARTITIONS = 3


@contextlib.asynccontextmanager
async def _folded(
    kafka: Any, make_projection: support.MakeProjection, url: str, *, cluster_mode: bool, **ttl: int
) -> AsyncIterator[tuple[Any, dict[str, Any]]]:
    """The Redis store once it has folded the log, and the log by execution; closed after."""
    topics, settings, _ = await make_projection(PARTITIONS, prepared=False, batch_size=200)
    hist = support.histories(40, seed=11, tasks=6)
    events = support.mixed(hist, seed=12)
    events += events[::17]  # duplicates, as an at-least-once producer could write
    await support.append_all(kafka, topics, events)
    store = fresh_store(url, settings, cluster_mode=cluster_mode, **ttl)
    tps = [(settings.pipeline_topic, p) for p in range(PARTITIONS)]
    async with support.running_worker(RedisProjector(settings, store, kafka.bootstrap_servers)):

        async def caught_up() -> bool:
            return await applied_total(store, tps) == len(events)

        await support.wait_until(caught_up, 60, "the redis processor to catch up")
    try:
        yield store, support.by_execution(events)
    finally:
        await store.client.aclose()


async def test_redis_read_model_equals_the_fold_of_the_log(
    kafka: Any, make_projection: support.MakeProjection, redis: str
) -> None:
    async with _folded(kafka, make_projection, redis, cluster_mode=False) as (store, log):
        assert await compare_with_fold(store, log) == []
        some = next(iter(log))
        fields = await store.client.hkeys(store.keys.execution(some))  # type: ignore[misc]
        assert {b"status", b"applied", b"pipeline"} <= set(fields)
        assert any(f.startswith(b"task:") for f in fields), "task states are hash fields"


async def test_cluster_mode_keeps_each_execution_in_one_slot(
    kafka: Any, make_projection: support.MakeProjection, redis_cluster: str
) -> None:
    async with _folded(kafka, make_projection, redis_cluster, cluster_mode=True) as (store, log):
        assert await compare_with_fold(store, log) == []
        nodes = {store.client.get_node_from_key(store.keys.execution(e)).port for e in log}  # type: ignore[union-attr]
        assert len(nodes) == 3, "executions spread over the three masters"


async def test_completed_states_expire_after_their_ttl(
    kafka: Any, make_projection: support.MakeProjection, redis: str
) -> None:
    async with _folded(
        kafka, make_projection, redis, cluster_mode=False, ttl_active=600, ttl_completed=1
    ) as (store, log):
        found = {eid: await store.load(eid) for eid in log}
        terminal = [e for e, s in found.items() if s and s.entry.state.status == "completed"]
        active = [e for e, s in found.items() if s and s.entry.state.status == "running"]
        assert terminal, "the simulated histories include completed executions"
        for eid in active:
            ttl = await store.client.ttl(store.keys.execution(eid))
            assert 0 < ttl <= 600
        await asyncio.sleep(2.5)
        for eid in terminal:
            assert await store.load(eid) is None, f"{eid} outlived ttl.completed_states"
        for eid in active:
            assert await store.load(eid) is not None
