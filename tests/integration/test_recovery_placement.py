"""Where the recovery supervisor places orphans: on live nodes only, within their bound.

A node SIGKILLed a moment ago still holds a valid heartbeat lease for a ttl; its
presence session (``commands.presence``) is gone at once, so it gets no orphans. A live
node is given at most ``recovery.max_concurrent_recoveries`` of them at a time, however
many are waiting; the rest are placed by later scans as slots free up.
"""

from __future__ import annotations

import uuid

import asyncpg
from _databases import MakeDatabase

from orchestrator.commands import LeaseStore
from orchestrator.commands.presence import Presence
from orchestrator.runtime import RecoveryPolicy
from orchestrator.runtime._schema import ensure_runtime_tables
from orchestrator.runtime.health import NodeHeartbeat
from orchestrator.runtime.supervisor import RecoverySupervisor

POLICY = RecoveryPolicy(
    crash_timeout=1.0,
    failover_timeout=1.0,
    health_interval=600.0,  # no heartbeat renews during the test: the leases stay valid
    failure_threshold=1,
    max_concurrent=3,
)


async def _node(dsn: str, node_id: str) -> tuple[asyncpg.Pool, Presence, NodeHeartbeat]:
    """A node of its own (own pool, so its sessions can die alone) that runs pipeline p."""
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=3)
    leases = LeaseStore(pool)
    presence = Presence(pool, node_id, leases)
    await presence.start()
    heartbeat = NodeHeartbeat(pool, leases, node_id, POLICY, lambda: (["p"], 0, 0))
    await heartbeat.beat()
    return pool, presence, heartbeat


async def test_orphans_go_to_live_nodes_only_and_within_their_bound(
    make_database: MakeDatabase,
) -> None:
    dsn = await make_database(migrated=True)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=4)
    await ensure_runtime_tables(pool)
    await pool.execute(
        "CREATE TABLE ps (execution_id text PRIMARY KEY, pipeline_id text, owner text,"
        " status text, updated_at timestamptz)"
    )
    orphans = [f"exec_{uuid.uuid4().hex[:8]}" for _ in range(10)]
    await pool.executemany(
        "INSERT INTO ps VALUES ($1, 'p', 'gone', 'running', now() - interval '1 hour')",
        [(e,) for e in orphans],
    )
    live_pool, live_presence, _ = await _node(dsn, "live")
    dead_pool, _, _ = await _node(dsn, "dead")
    dead_pool.terminate()  # SIGKILL: its sessions end, its heartbeat lease stays valid
    assert await pool.fetchval("SELECT expires_at > now() FROM leases WHERE name = 'node:dead'"), (
        "the dead node's heartbeat lease is still valid"
    )

    recovered: list[str] = []

    async def recover(execution_id: str, reason: str) -> None:
        recovered.append(execution_id)

    leader = RecoverySupervisor(
        pool,
        "leader",  # runs no pipeline p: it must place every orphan elsewhere
        POLICY,
        pipeline_states="ps",
        recover=recover,
        busy=set,
    )
    try:
        placed = await leader.scan_once()
        assigned = await pool.fetch("SELECT execution_id, node_id FROM recovery_assignments")
        assert {r["node_id"] for r in assigned} == {"live"}  # never the dead node
        assert len(placed) == len(assigned) == POLICY.max_concurrent  # the bound
        assert recovered == []
        # A second scan adds nothing while the live node's slots are all assigned.
        assert await leader.scan_once() == []
        # Once those are claimed and done, the next scan places as many again.
        await pool.execute("DELETE FROM recovery_assignments")
        more = await leader.scan_once()
        assert len(more) == POLICY.max_concurrent
    finally:
        await live_presence.stop()
        await live_pool.close()
        await pool.close()
