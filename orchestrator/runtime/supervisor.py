"""The recovery supervisor: one leader finds orphaned executions and gets them resumed.

Every node runs a :class:`RecoverySupervisor`. It campaigns in the election
``leader/recovery_supervisor`` (ttl = ``health_checks.interval * failure_threshold``)
and, while leading, scans ``pipeline_states`` every ``scan_every`` seconds for
executions that are not finished (``initialized``, ``validating``, ``running``) and
whose lease ``execution:<id>`` is free or expired, and that either

* made no progress for ``pipeline_crash.timeout`` seconds (``updated_at``), or
* belong to a node whose heartbeat lease ``node:<owner>`` expired at least
  ``node_failure.failover_timeout`` seconds ago (``redistribute_tasks``).

All times are compared on the database's clock. For each one the leader picks a live,
healthy node that has the pipeline registered and a free recovery slot (fewest running
executions first, itself on a tie): itself, and it resumes the execution in the
background; or another node, and it writes a row in ``recovery_assignments`` that the
node claims on its next poll. Live means its heartbeat lease is valid *and* its presence
session (``commands.presence``) is still open: a node SIGKILLed a moment ago keeps a
valid lease for a ttl, and must not be handed orphans it will never run. A node drives
at most ``max_concurrent`` recovered executions at once (its claim loop claims only
free slots); what does not fit waits for a later scan.
Whoever resumes takes the execution's lease first (design §3), so two nodes can never
both resume it: a stale assignment or a deposed leader costs nothing but a refused lease.
Paused executions are left alone: someone paused them on purpose.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from orchestrator.commands import TRANSIENT_ERRORS, CoordinationStore, LeaderElection, live_holders
from orchestrator.events import Outage, record_decision, record_leader
from orchestrator.projections import RecoveryReads
from orchestrator.runtime._orphans import StoreOrphans, live_nodes_by_store
from orchestrator.runtime.health import NODE_PREFIX
from orchestrator.runtime.policy import RecoveryPolicy

log = logging.getLogger(__name__)

ELECTION = "recovery_supervisor"
ACTIVE = ["initialized", "validating", "running"]

Recover = Callable[[str, str], Awaitable[None]]
"""``recover(execution_id, reason)``: start resuming in the background; return at once."""


@dataclass(frozen=True, slots=True)
class Orphan:
    """An execution the leader decided to have resumed, and why."""

    execution_id: str
    pipeline_id: str
    owner: str | None
    reason: str  # "pipeline_crash" or "node_failure"


class RecoverySupervisor:
    """Leader-elected scanner plus this node's claim loop (see the module docstring)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        node_id: str,
        policy: RecoveryPolicy,
        *,
        pipeline_states: str,
        recover: Recover,
        busy: Callable[[], set[str]],
        healthy: Callable[[], bool] = lambda: True,
        supervise: bool = True,
        leases: CoordinationStore | None = None,
        free_slots: Callable[[], int] | None = None,
    ) -> None:
        self.pool = pool
        self._leases = leases  # None: PostgreSQL's leases table, joined in SQL
        self._reads = RecoveryReads(pool, pipeline_states)
        self._store_scan = None if leases is None else StoreOrphans(self._reads, leases)
        self.node_id = node_id
        self.policy = policy
        self.recover = recover
        self.busy = busy
        self.healthy = healthy
        self.supervise = supervise
        self.free_slots = free_slots or (lambda: policy.max_concurrent)
        self.election = LeaderElection(
            ELECTION, node_id, ttl=policy.node_ttl, pool=pool, store=leases
        )
        self.scans = 0
        self.decisions: list[Orphan] = []
        self._unplaceable: set[str] = set()
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def claim_grace(self) -> float:
        """How long an assignment stands before the leader may place the execution again."""
        return max(2.0, 3 * self.policy.scan_every)

    async def start(self) -> None:
        if self.supervise:
            await self.election.start()
            self._tasks.append(asyncio.create_task(self._lead(), name="recovery supervisor"))
        self._tasks.append(asyncio.create_task(self._claim(), name=f"claims {self.node_id}"))

    async def stop(self) -> None:
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.supervise:
            await self.election.stop()
            record_leader(ELECTION, self.node_id, False)

    def check(self) -> None:
        """Re-raise what ended a supervisor loop, if one ended."""
        for task in self._tasks:
            if task.done():
                task.result()

    @property
    def leading(self) -> bool:
        return self.supervise and self.election.leading

    # --- the leader -------------------------------------------------------------------

    async def _lead(self) -> None:
        outage = Outage(f"recovery supervisor on {self.node_id}: PostgreSQL", log)
        while True:
            pause = self.policy.scan_every
            # is_leader() re-raises what ended the background campaign, if anything did.
            leading = await self.election.is_leader()
            record_leader(ELECTION, self.node_id, leading)
            if leading and self.healthy():
                try:
                    await self.scan_once()
                    outage.recovered()
                except TRANSIENT_ERRORS as exc:  # ridden out, logged once per outage
                    pause = max(pause, outage.failed(exc))
            await asyncio.sleep(pause)

    async def scan_once(self) -> list[Orphan]:
        """Find orphans and place each one; returns what was placed."""
        p = self.policy
        if self._store_scan is None:
            rows = await self._reads.orphans(
                statuses=ACTIVE,
                crash_timeout=p.crash_timeout,
                failover_timeout=p.failover_timeout,
                claim_grace=self.claim_grace,
                node_prefix=NODE_PREFIX,
            )
        else:
            rows = await self._store_scan.scan(
                crash_timeout=p.crash_timeout,
                failover_timeout=p.failover_timeout,
                active=ACTIVE,
                claim_grace=self.claim_grace,
            )
        self.scans += 1
        if not rows:
            return []
        nodes = await self._live_nodes()
        if self.node_id in nodes:
            nodes[self.node_id] = (
                nodes[self.node_id][0],
                nodes[self.node_id][1],
                self.free_slots(),
            )
        busy = self.busy()
        placed: list[Orphan] = []
        for row in rows:
            orphan = Orphan(row["execution_id"], row["pipeline_id"], row["owner"], row["reason"])
            if orphan.execution_id in busy:
                continue
            target = self._choose(orphan, nodes)
            if target is None:
                if any(orphan.pipeline_id in n[0] for n in nodes.values()):
                    continue  # every node that can run it is full: a later scan places it
                if orphan.execution_id not in self._unplaceable:
                    record_decision(orphan.reason, "no_live_node")
                    self._unplaceable.add(orphan.execution_id)
                    log.warning(
                        "execution %s (%s) needs recovery (%s) but no live node has pipeline %r",
                        orphan.execution_id,
                        orphan.owner,
                        orphan.reason,
                        orphan.pipeline_id,
                    )
                continue
            self._unplaceable.discard(orphan.execution_id)
            pipelines, load, free = nodes[target]
            nodes[target] = (pipelines, load + 1, free - 1)
            log.warning(
                "execution %s of %s: %s (owner %s); resuming on %s",
                orphan.execution_id,
                orphan.pipeline_id,
                orphan.reason,
                orphan.owner,
                target,
            )
            if target == self.node_id:
                record_decision(orphan.reason, "resume_here")
                await self.recover(orphan.execution_id, orphan.reason)
            else:
                await self._assign(orphan, target)
                record_decision(orphan.reason, "assigned")
            placed.append(orphan)
        self.decisions.extend(placed)
        return placed

    async def _live_nodes(self) -> dict[str, tuple[set[str], int, int]]:
        """``node -> (pipelines, running executions, free recovery slots)`` of the nodes
        that are alive: heartbeat lease valid and presence session open (with etcd
        leases: the node's lease held)."""
        if self._leases is not None:
            return await live_nodes_by_store(self.pool, self._leases, self.policy.max_concurrent)
        async with self.pool.acquire() as conn:
            rows = await conn.fetch(
                f"""SELECT n.node_id, n.pipelines, n.active, n.recovering,
                       (SELECT count(*) FROM recovery_assignments a
                        WHERE a.node_id = n.node_id) AS pending
                   FROM runtime_nodes n
                   JOIN leases l ON l.name = '{NODE_PREFIX}' || n.node_id
                   WHERE n.healthy AND l.holder IS NOT NULL AND l.expires_at > now()"""
            )
            alive = await live_holders(conn, [r["node_id"] for r in rows], "leases")
        cap = self.policy.max_concurrent
        return {
            r["node_id"]: (set(r["pipelines"]), r["active"], cap - r["recovering"] - r["pending"])
            for r in rows
            if r["node_id"] in alive
        }

    def _choose(self, orphan: Orphan, nodes: dict[str, tuple[set[str], int, int]]) -> str | None:
        able = [
            (load, node != self.node_id, node)
            for node, (pipelines, load, free) in nodes.items()
            if orphan.pipeline_id in pipelines and node != orphan.owner and free > 0
        ]
        owner = nodes.get(orphan.owner or "")
        if not able and owner is not None and orphan.pipeline_id in owner[0] and owner[2] > 0:
            able = [(0, False, orphan.owner or "")]  # the owner is back (restarted): its turn
        return min(able)[2] if able else None

    async def _assign(self, orphan: Orphan, node: str) -> None:
        epoch = self.election.fencing_token or 0
        await self.pool.execute(
            """INSERT INTO recovery_assignments
                   (execution_id, pipeline_id, node_id, reason, assigned_by, leader_epoch)
               VALUES ($1, $2, $3, $4, $5, $6)
               ON CONFLICT (execution_id) DO UPDATE SET node_id = EXCLUDED.node_id,
                   reason = EXCLUDED.reason, assigned_by = EXCLUDED.assigned_by,
                   leader_epoch = EXCLUDED.leader_epoch, assigned_at = now()""",
            orphan.execution_id,
            orphan.pipeline_id,
            node,
            orphan.reason,
            self.node_id,
            epoch,
        )

    # --- every node -------------------------------------------------------------------

    async def _claim(self) -> None:
        every = min(self.policy.health_interval, self.policy.scan_every)
        outage = Outage(f"node {self.node_id}: reading recovery assignments, PostgreSQL", log)
        pause = every
        while True:
            await asyncio.sleep(pause)
            pause = every
            free = self.free_slots()
            if not self.healthy() or free <= 0:
                continue
            try:  # only as many as this node has free slots for; the rest stay assigned
                rows = await self.pool.fetch(
                    """DELETE FROM recovery_assignments WHERE execution_id IN (
                           SELECT execution_id FROM recovery_assignments WHERE node_id = $1
                           ORDER BY assigned_at LIMIT $2 FOR UPDATE SKIP LOCKED)
                       RETURNING execution_id, reason""",
                    self.node_id,
                    free,
                )
                outage.recovered()
            except TRANSIENT_ERRORS as exc:  # ridden out, logged once per outage
                pause = max(every, outage.failed(exc))
                continue
            for row in rows:
                log.warning(
                    "node %s: claiming execution %s (%s)",
                    self.node_id,
                    row["execution_id"],
                    row["reason"],
                )
                await self.recover(row["execution_id"], row["reason"])
