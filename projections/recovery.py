"""The recovery supervisor's reads of ``pipeline_states`` (only ``projections`` issues
SQL on read-model tables).

Why: the supervisor (``orchestrator.runtime``) looks for unfinished executions that
nobody drives any more. Its rules join the read model's ``pipeline_states`` with the
lease table (``commands``') and the runtime's ``recovery_assignments``; the two other
tables are named by the caller, the read model's shape stays here.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

_NOT_ASSIGNED = """
      AND NOT EXISTS (
          SELECT 1 FROM {assignments} a
          WHERE a.execution_id = p.execution_id
            AND a.assigned_at > now() - make_interval(secs => ${grace}))
    ORDER BY p.updated_at
    LIMIT 500"""
"""Not placed by the leader within the claim grace; the oldest update first, 500 a scan."""

_ORPHANS = """
    SELECT p.execution_id, p.pipeline_id, p.owner,
           CASE WHEN nl.name IS NOT NULL
                 AND nl.expires_at <= now() - make_interval(secs => $2)
                THEN 'node_failure' ELSE 'pipeline_crash' END AS reason
    FROM {pipeline_states} p
    LEFT JOIN {leases} l ON l.name = 'execution:' || p.execution_id
    LEFT JOIN {leases} nl ON nl.name = $5 || p.owner
    WHERE p.status = ANY($3::text[])
      AND (l.name IS NULL OR l.holder IS NULL OR l.expires_at <= now())
      AND (p.updated_at <= now() - make_interval(secs => $1)
           OR (nl.name IS NOT NULL
               AND nl.expires_at <= now() - make_interval(secs => $2)))"""

_CANDIDATES = """
    SELECT p.execution_id, p.pipeline_id, p.owner,
           p.updated_at <= now() - make_interval(secs => $1) AS quiet
    FROM {pipeline_states} p
    WHERE p.status = ANY($2::text[])"""


class RecoveryReads:
    """Unfinished executions as the supervisor's scan sees them (oldest update first,
    500 at most per call), over ``pool`` and the table ``pipeline_states``."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        pipeline_states: str,
        *,
        assignments: str = "recovery_assignments",
        leases: str = "leases",
    ) -> None:
        self.pool = pool
        names = {"pipeline_states": pipeline_states, "assignments": assignments}
        self._orphans = (_ORPHANS + _NOT_ASSIGNED).format(leases=leases, grace=4, **names)
        self._candidates = (_CANDIDATES + _NOT_ASSIGNED).format(grace=3, **names)

    async def orphans(
        self,
        *,
        statuses: Sequence[str],
        crash_timeout: float,
        failover_timeout: float,
        claim_grace: float,
        node_prefix: str,
    ) -> list[asyncpg.Record]:
        """With PostgreSQL leases: executions in ``statuses`` whose lease is free or
        lapsed, quiet for ``crash_timeout`` (``pipeline_crash``) or whose owner's node
        lease lapsed ``failover_timeout`` ago (``node_failure``), not assigned within
        ``claim_grace``. Columns: execution_id, pipeline_id, owner, reason."""
        rows: list[asyncpg.Record] = await self.pool.fetch(
            self._orphans,
            crash_timeout,
            failover_timeout,
            list(statuses),
            claim_grace,
            node_prefix,
        )
        return rows

    async def candidates(
        self, *, statuses: Sequence[str], crash_timeout: float, claim_grace: float
    ) -> list[asyncpg.Record]:
        """With leases outside PostgreSQL: executions in ``statuses`` not assigned within
        ``claim_grace``; ``quiet`` tells whether they made no progress for
        ``crash_timeout`` (the caller checks the leases). Columns: execution_id,
        pipeline_id, owner, quiet."""
        rows: list[asyncpg.Record] = await self.pool.fetch(
            self._candidates, crash_timeout, list(statuses), claim_grace
        )
        return rows
