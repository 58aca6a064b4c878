"""Faults of the Redis read model: nothing lost, nothing applied twice.

* the processor (``orchestrator-state redis project``, a real subprocess) SIGKILLed at
  random points mid-stream and restarted;
* the standalone Redis SIGKILLed mid-stream and restarted (AOF, fsync always);
* one node of the 3-node cluster SIGKILLed mid-stream and restarted.

After catching up, every execution in Redis must equal the pure fold of its events,
with its event count exactly the number of its records in the log.
"""

from __future__ import annotations

import asyncio
import functools
import random
import signal
from pathlib import Path
from typing import Any

import _projector_support as support
import pytest
from _redis_support import applied_total, compare_with_fold, fresh_store

from orchestrator.devstack import RedisCluster, RedisServer
from orchestrator.projections.redisprojector import RedisProjector
from orchestrator.projections.redisstore import RedisReadModelStore

PARTITIONS = 3
KILLS = 5


async def _start(url: str, kafka: Any, settings: Any, stderr: Path) -> Any:
    return await support.start_cli(
        stderr, "redis", "project",
        "--redis-url", url,
        "--bootstrap-servers", kafka.bootstrap_servers,
        "--projection", settings.name,
        "--pipeline-topic", settings.pipeline_topic,
        "--batch-size", "100",
        "--session-timeout-ms", "6000",
    )  # fmt: skip


@pytest.mark.timeout(300)
async def test_processor_sigkilled_mid_stream_loses_and_doubles_nothing(
    kafka: Any, make_projection: support.MakeProjection, redis: str, tmp_path: Path
) -> None:
    rng = random.Random(4242)
    topics, settings, _ = await make_projection(PARTITIONS, prepared=False, name="redis_kill")
    hist = support.histories(150, seed=21, tasks=8)
    events = support.mixed(hist, seed=22)
    await support.append_all(kafka, topics, events)
    store = fresh_store(redis, settings, prefix="orchestrator:")
    # The CLI uses the default key prefix: clear what an earlier run of this test left.
    await _clear(store, list(hist))
    tps = [(settings.pipeline_topic, p) for p in range(PARTITIONS)]
    stderr = tmp_path / "redis-processor.log"
    total = len(events)
    try:
        for threshold in sorted(rng.uniform(0.05, 0.9) * total for _ in range(KILLS)):
            proc = await _start(redis, kafka, settings, stderr)

            async def past(threshold: float = threshold, proc: Any = proc) -> bool:
                assert proc.returncode is None, stderr.read_text(errors="replace")[-3000:]
                return await applied_total(store, tps) >= threshold

            await support.wait_until(past, 120, f"progress past {int(threshold)}", interval=0.02)
            await asyncio.sleep(rng.choice([0.0, rng.uniform(0, 0.2)]))
            proc.send_signal(signal.SIGKILL)
            await proc.wait()
        proc = await _start(redis, kafka, settings, stderr)

        async def done() -> bool:
            assert proc.returncode is None, stderr.read_text(errors="replace")[-3000:]
            return await applied_total(store, tps) == total

        await support.wait_until(done, 120, "the processor to catch up")
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
        assert await compare_with_fold(store, support.by_execution(events)) == []
    finally:
        await store.client.aclose()


async def _clear(store: RedisReadModelStore, execution_ids: list[str]) -> None:
    for eid in execution_ids:
        await store.client.delete(store.keys.execution(eid))
    await store.client.delete(store.keys.offsets(store.projection))


async def _stream_with_a_fault(
    kafka: Any,
    make_projection: support.MakeProjection,
    store_url: str,
    fault: Any,
    *,
    cluster: bool,
) -> None:
    """Produce in chunks while the processor runs; ``fault()`` strikes mid-stream."""
    topics, settings, _ = await make_projection(PARTITIONS, prepared=False, batch_size=100)
    hist = support.histories(90, seed=31, tasks=6)
    events = support.mixed(hist, seed=32)
    store = fresh_store(store_url, settings, cluster_mode=cluster)
    tps = [(settings.pipeline_topic, p) for p in range(PARTITIONS)]
    chunks = [events[i : i + 400] for i in range(0, len(events), 400)]
    try:
        async with (
            support.event_log(kafka.bootstrap_servers, topics, kafka.supports_idempotence) as log,
            support.running_worker(RedisProjector(settings, store, kafka.bootstrap_servers)),
        ):
            for n, chunk in enumerate(chunks):
                await support.produce(log, chunk)
                if n == len(chunks) // 2:
                    sent = sum(len(c) for c in chunks[: n + 1])

                    async def halfway(sent: int = sent) -> bool:
                        return await applied_total(store, tps) >= sent // 2

                    await support.wait_until(halfway, 60, "the processor to be mid-stream")
                    await fault()

            async def caught_up() -> bool:
                try:
                    return await applied_total(store, tps) == len(events)
                except Exception:  # the client may still be reconnecting
                    return False

            await support.wait_until(caught_up, 120, "the processor to catch up after the fault")
        assert await compare_with_fold(store, support.by_execution(events)) == []
    finally:
        await store.client.aclose()


async def test_standalone_redis_killed_mid_stream_keeps_exactly_once(
    kafka: Any, make_projection: support.MakeProjection, redis: str, killable_redis: RedisServer
) -> None:
    restart = functools.partial(killable_redis.restart, kill=True)
    await _stream_with_a_fault(kafka, make_projection, redis, restart, cluster=False)


async def test_a_cluster_node_killed_mid_stream_keeps_exactly_once(
    kafka: Any,
    make_projection: support.MakeProjection,
    redis_cluster: str,
    killable_redis_cluster: RedisCluster,
) -> None:
    cluster = killable_redis_cluster

    async def fault() -> None:
        await cluster.kill(1)
        await asyncio.sleep(1.0)  # writes to its slots fail meanwhile
        await cluster.resume(1)

    await _stream_with_a_fault(kafka, make_projection, redis_cluster, fault, cluster=True)
