"""The harness's Redis servers do what the Redis backend relies on.

A standalone Redis keeps an acknowledged write across a SIGKILL (AOF, fsync
always); the 3-node cluster serves every slot, and a killed node restarted in
place comes back with its keys.
"""

from __future__ import annotations

import uuid

from redis.asyncio import Redis, RedisCluster

from orchestrator.devstack import RedisCluster as RedisClusterServer
from orchestrator.devstack import RedisServer


async def test_standalone_redis_keeps_acknowledged_writes_across_a_sigkill(
    redis: str, killable_redis: RedisServer
) -> None:
    key = f"test:{uuid.uuid4().hex}"
    client = Redis.from_url(redis)
    try:
        await client.set(key, "kept")
    finally:
        await client.aclose()
    await killable_redis.restart(kill=True)
    client = Redis.from_url(redis)
    try:
        assert await client.get(key) == b"kept"
    finally:
        await client.aclose()


async def test_redis_cluster_serves_every_node_and_survives_a_node_restart(
    redis_cluster: str, killable_redis_cluster: RedisClusterServer
) -> None:
    keys = {f"test:{uuid.uuid4().hex}": str(n) for n in range(30)}
    client = RedisCluster.from_url(redis_cluster)
    try:
        for key, value in keys.items():
            await client.set(key, value)
        nodes = {client.get_node_from_key(key).port for key in keys}
        assert len(nodes) == 3, "30 random keys land on all three masters"
        await killable_redis_cluster.kill(1)
        await killable_redis_cluster.resume(1)
    finally:
        await client.aclose()
    client = RedisCluster.from_url(redis_cluster)
    try:
        for key, value in keys.items():
            assert await client.get(key) == value.encode()
    finally:
        await client.aclose()
