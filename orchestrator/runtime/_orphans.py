"""Orphans and live nodes when leases live outside PostgreSQL (etcd coordination).

With PostgreSQL leases the supervisor finds orphans in one query that joins the
``leases`` table. With etcd the leases are not in the database, so the same rules
are applied in two steps: the candidates come from the read model, and the leases
held now come from the coordination store. A node whose lease is gone has been
dead for at least its ttl already (etcd deleted the key when its keep-alives
stopped), so its executions are recovered at once as a ``node_failure``.
"""

from __future__ import annotations

import asyncpg

from orchestrator.commands.leases import CoordinationStore
from orchestrator.runtime.health import NODE_PREFIX

_CANDIDATES = """
    SELECT p.execution_id, p.pipeline_id, p.owner,
           p.updated_at <= now() - make_interval(secs => $1) AS quiet
    FROM {pipeline_states} p
    WHERE p.status = ANY($2::text[])
      AND NOT EXISTS (
          SELECT 1 FROM recovery_assignments a
          WHERE a.execution_id = p.execution_id
            AND a.assigned_at > now() - make_interval(secs => $3))
    ORDER BY p.updated_at
    LIMIT 500"""


async def orphans_by_store(
    pool: asyncpg.Pool,
    store: CoordinationStore,
    *,
    pipeline_states: str,
    crash_timeout: float,
    active: list[str],
    claim_grace: float,
) -> list[dict[str, object]]:
    """Rows shaped like the supervisor's scan: execution_id, pipeline_id, owner, reason."""
    rows = await pool.fetch(
        _CANDIDATES.format(pipeline_states=pipeline_states), crash_timeout, active, claim_grace
    )
    if not rows:
        return []
    owned = {lease.name.removeprefix("execution:") for lease in await store.held("execution:")}
    alive = {lease.name.removeprefix(NODE_PREFIX) for lease in await store.held(NODE_PREFIX)}
    found = []
    for row in rows:
        if row["execution_id"] in owned:
            continue
        node_gone = row["owner"] is not None and row["owner"] not in alive
        if row["quiet"] or node_gone:
            reason = "node_failure" if node_gone else "pipeline_crash"
            found.append({**dict(row), "reason": reason})
    return found


async def live_nodes_by_store(
    pool: asyncpg.Pool, store: CoordinationStore
) -> dict[str, tuple[set[str], int]]:
    """Healthy registered nodes whose node lease is held now: pipelines and load."""
    alive = {lease.name.removeprefix(NODE_PREFIX) for lease in await store.held(NODE_PREFIX)}
    rows = await pool.fetch("SELECT node_id, pipelines, active FROM runtime_nodes WHERE healthy")
    return {r["node_id"]: (set(r["pipelines"]), r["active"]) for r in rows if r["node_id"] in alive}
