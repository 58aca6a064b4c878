"""A 3-broker cluster (topics with replication 3, min.insync.replicas 2) under load:
the partition leader is SIGKILLed (writing goes on), then two of three brokers are
down (appends fail with a clear error within their deadline), then the brokers come
back (writing resumes). Nothing acknowledged is lost; the read model equals the fold
of the log (independent verifier)."""

from __future__ import annotations

import asyncio

import pytest
from _stack import Load, fault_stack, until
from aiokafka.admin import AIOKafkaAdminClient

from orchestrator.commands import SaveCheckpoint
from orchestrator.devstack import KafkaCluster, PostgresServer
from orchestrator.events.errors import LogError

DEADLINE_MS = 5000


async def _leader(bootstrap: str, topic: str, partition: int) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    leaders = {p["partition"]: p["leader"] for p in described["partitions"]}
    return int(leaders[partition])


@pytest.mark.timeout(600)
async def test_cluster_leader_then_two_of_three_brokers_killed(
    kafka_cluster: KafkaCluster, own_postgres: PostgresServer
) -> None:
    bootstrap = kafka_cluster.bootstrap_servers
    async with fault_stack(
        bootstrap, own_postgres.dsn, delivery_timeout_ms=DEADLINE_MS, replication=3, min_insync=2
    ) as stack:
        load = Load(stack, executions=3)
        load.start()
        await until(lambda: load.acked >= 30, within=150.0)
        probe = next(iter(stack.runtime.writers.values()))
        assert probe.last_position is not None
        leader = await _leader(bootstrap, probe.last_position.topic, probe.last_position.partition)

        await kafka_cluster.kill(leader)  # a new leader is elected among the in-sync two
        mark = load.acked
        await until(lambda: load.acked >= mark + 30, within=150.0)

        second = next(n for n in (1, 2, 3) if n != leader)
        await kafka_cluster.kill(second)  # one broker left: below min.insync, no quorum
        with pytest.raises(LogError, match=r"not acknowledged by Kafka|NotEnoughReplicas"):
            async with asyncio.timeout(10 * DEADLINE_MS / 1000):  # not a timing test
                await probe.execute(SaveCheckpoint(name="below-min-insync"))

        await asyncio.gather(kafka_cluster.resume(leader), kafka_cluster.resume(second))
        mark = load.acked
        await until(lambda: load.acked >= mark + 30, within=150.0)  # writing resumes
        await load.stop_and_verify()
