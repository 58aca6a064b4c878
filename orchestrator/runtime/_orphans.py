"""Orphans and live nodes when leases live outside PostgreSQL (etcd coordination).

With PostgreSQL leases the supervisor finds orphans in one query that joins the
``leases`` table. With etcd the leases are not in the database, so the same rules
are applied in two steps: the candidates come from the read model, and the leases
held now come from the coordination store. etcd deletes a dead node's lease key
rather than keeping its expiry, so the leader remembers since when each owner's
node lease has been missing: ``failover_timeout`` after that, its executions are a
``node_failure``; before, an execution quiet for ``crash_timeout`` with its lease
lapsed is a ``pipeline_crash``, as with PostgreSQL.
"""

from __future__ import annotations

import time

import asyncpg

from orchestrator.commands import CoordinationStore
from orchestrator.projections import RecoveryReads
from orchestrator.runtime.health import NODE_PREFIX


class StoreOrphans:
    """The supervisor's orphan scan over a coordination store (see the module doc)."""

    def __init__(self, reads: RecoveryReads, store: CoordinationStore) -> None:
        self.reads = reads
        self.store = store
        self._missing_since: dict[str, float] = {}

    async def scan(
        self,
        *,
        crash_timeout: float,
        failover_timeout: float,
        active: list[str],
        claim_grace: float,
    ) -> list[dict[str, object]]:
        """Rows shaped like the SQL scan's: execution_id, pipeline_id, owner, reason."""
        rows = await self.reads.candidates(
            statuses=active, crash_timeout=crash_timeout, claim_grace=claim_grace
        )
        if not rows:
            return []
        held = await self.store.held("execution:")
        owned = {lease.name.removeprefix("execution:") for lease in held}
        alive = await _alive(self.store)
        now = time.monotonic()
        owners = {row["owner"] for row in rows if row["owner"] is not None}
        self._missing_since = {node: self._missing_since.get(node, now) for node in owners - alive}
        found = []
        for row in rows:
            if row["execution_id"] in owned:
                continue
            gone = self._missing_since.get(row["owner"])
            node_failed = gone is not None and now - gone >= failover_timeout
            if row["quiet"] or node_failed:
                reason = "node_failure" if node_failed else "pipeline_crash"
                found.append({**dict(row), "reason": reason})
        return found


async def _alive(store: CoordinationStore) -> set[str]:
    return {lease.name.removeprefix(NODE_PREFIX) for lease in await store.held(NODE_PREFIX)}


async def live_nodes_by_store(
    pool: asyncpg.Pool, store: CoordinationStore, max_concurrent: int
) -> dict[str, tuple[set[str], int, int]]:
    """Healthy registered nodes whose node lease is held now: pipelines, load and free
    recovery slots (``max_concurrent`` less what they recover or are assigned)."""
    alive = await _alive(store)
    rows = await pool.fetch(
        """SELECT n.node_id, n.pipelines, n.active, n.recovering,
                  (SELECT count(*) FROM recovery_assignments a
                   WHERE a.node_id = n.node_id) AS pending
           FROM runtime_nodes n WHERE n.healthy"""
    )
    return {
        r["node_id"]: (
            set(r["pipelines"]),
            r["active"],
            max_concurrent - r["recovering"] - r["pending"],
        )
        for r in rows
        if r["node_id"] in alive
    }
