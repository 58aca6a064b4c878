"""Helpers of the Redis read-model tests: a store under a fresh key prefix, progress,
and the check that Redis holds exactly the pure fold of the log."""

from __future__ import annotations

import uuid

from orchestrator.events.envelope import Envelope
from orchestrator.events.fold import fold
from orchestrator.projections.redisstore import (
    RedisKeys,
    RedisReadModelStore,
    redis_client,
)
from orchestrator.projections.settings import ProjectionSettings


def fresh_store(
    url: str,
    settings: ProjectionSettings,
    *,
    cluster_mode: bool = False,
    ttl_active: int = 3600,
    ttl_completed: int = 86400,
    prefix: str | None = None,
) -> RedisReadModelStore:
    """A store of ``settings``'s Redis read model under a key prefix no other test uses."""
    client = redis_client(url, cluster_mode=cluster_mode)
    return RedisReadModelStore(
        client,
        settings.name + "-redis",
        keys=RedisKeys(prefix or f"test-{uuid.uuid4().hex[:8]}:"),
        ttl_active=ttl_active,
        ttl_completed=ttl_completed,
    )


async def applied_total(store: RedisReadModelStore, partitions: list[tuple[str, int]]) -> int:
    """Records the processor has marked done, over ``partitions`` (sum of next offsets)."""
    return sum((await store.offsets(partitions)).values())


async def compare_with_fold(
    store: RedisReadModelStore, log_by_execution: dict[str, list[Envelope]]
) -> list[str]:
    """Every execution in Redis against the fold of its events as the log holds them
    (duplicates included): state and event count. Returns what differs."""
    out: list[str] = []
    for eid, events in log_by_execution.items():
        stored = await store.load(eid)
        if stored is None:
            out.append(f"{eid}: not in Redis")
            continue
        expected = fold(events)
        if stored.entry.state != expected:
            out.append(f"{eid}: state differs from the fold")
        if stored.entry.event_count != len(events):
            out.append(f"{eid}: event_count {stored.entry.event_count} != {len(events)}")
    return out
