"""The harness's Redis servers do what the Redis backend relies on.

A standalone Redis keeps an acknowledged write across a SIGKILL (AOF, fsync
always); the 3-node cluster serves every slot, and a killed node restarted in
place comes back with its keys.
"""

from __future__ import annotations

import uuid

import pytest
from redis.asyncio import Redis, RedisCluster

from orchestrator.devstack import DevStack


async def test_standalone_redis_keeps_acknowledged_writes_across_a_sigkill(
    redis: str, devstack: DevStack
) -> None:
    if devstack.redis is None:
        pytest.skip("REDIS_URL names an external Redis: not ours to kill")
    key = f"test:{uuid.uuid4().hex}"
    client = Redis.from_url(redis)
    try:
        await client.set(key, "kept")
    finally:
        await client.aclose()
    await devstack.redis.restart(kill=True)
    client = Redis.from_url(redis)
    try:
        assert await client.get(key) == b"kept"
    finally:
        await client.aclose()


async def test_redis_cluster_serves_every_node_and_survives_a_node_restart(
    redis_cluster: str, devstack: DevStack
) -> None:
    if devstack.redis_cluster is None:
        pytest.skip("REDIS_CLUSTER_URL names an external cluster: not ours to kill")
    keys = {f"test:{uuid.uuid4().hex}": str(n) for n in range(30)}
    client = RedisCluster.from_url(redis_cluster)
    try:
        for key, value in keys.items():
            await client.set(key, value)
        nodes = {client.get_node_from_key(key).port for key in keys}
        assert len(nodes) == 3, "30 random keys land on all three masters"
        await devstack.redis_cluster.kill(1)
        await devstack.redis_cluster.resume(1)
    finally:
        await client.aclose()
    client = RedisCluster.from_url(redis_cluster)
    try:
        for key, value in keys.items():
            assert await client.get(key) == value.encode()
    finally:
        await client.aclose()
