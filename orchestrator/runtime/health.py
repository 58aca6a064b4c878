"""Node health: every node heartbeats the lease ``node:<id>`` and its ``runtime_nodes`` row.

The seed's ``health_checks``: every ``interval`` seconds the node renews its lease,
each try bounded by ``timeout``; the lease's ttl is ``interval * failure_threshold``,
so a node that missed ``failure_threshold`` heartbeats in a row is failed *on the
database's clock* (the lease expired) without anyone having to agree with the node.
The node itself counts consecutive misses too and reports itself unhealthy (it stops
claiming recovery work) after ``failure_threshold`` of them.

The row says which pipelines the node can run and how many executions it runs, so the
recovery supervisor knows where an orphaned execution may go.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import asyncpg

from orchestrator.commands import TRANSIENT_ERRORS, CoordinationStore, Lease, LeaseLost
from orchestrator.events import cancel_and_wait
from orchestrator.runtime.policy import RecoveryPolicy

log = logging.getLogger(__name__)

NODE_PREFIX = "node:"

_MISSED: tuple[type[BaseException], ...] = (TimeoutError, *TRANSIENT_ERRORS)

Describe = Callable[[], tuple[list[str], int, int]]
"""``() -> (pipeline ids registered here, executions running here, recoveries among them)``."""


@dataclass(eq=False)
class NodeHeartbeat:
    """Keeps ``node:<node_id>`` alive; ``start()`` beats once before returning."""

    pool: asyncpg.Pool
    leases: CoordinationStore
    node_id: str
    policy: RecoveryPolicy
    describe: Describe
    misses: int = field(default=0, init=False)
    healthy: bool = field(default=True, init=False)
    _lease: Lease | None = field(default=None, init=False)
    _task: asyncio.Task[None] | None = field(default=None, init=False)

    @property
    def lease_name(self) -> str:
        return NODE_PREFIX + self.node_id

    async def start(self) -> None:
        await self.beat()
        self._task = asyncio.create_task(self._run(), name=f"heartbeat {self.node_id}")

    async def stop(self) -> None:
        """Stop beating and release the lease: the node is down, cleanly."""
        task, self._task = self._task, None
        await cancel_and_wait(task)
        lease, self._lease = self._lease, None
        if lease is not None:
            with contextlib.suppress(*TRANSIENT_ERRORS):
                await self.leases.release(lease)
                await self.pool.execute(
                    "UPDATE runtime_nodes SET healthy = false, active = 0, recovering = 0"
                    " WHERE node_id = $1",
                    self.node_id,
                )

    def check(self) -> None:
        """Re-raise what ended the heartbeat loop, if it ended."""
        if self._task is not None and self._task.done():
            self._task.result()

    async def beat(self) -> None:
        """One heartbeat: renew (or take again) the lease, then refresh the row."""
        ttl = self.policy.node_ttl
        lease = self._lease
        if lease is not None:
            try:
                lease = await self.leases.renew(lease, ttl)
            except LeaseLost:
                log.warning("node %s: heartbeat lease lapsed; taking it again", self.node_id)
                lease = None
        if lease is None:
            lease = await self.leases.acquire(self.lease_name, self.node_id, ttl)
            if lease is None:
                current = await self.leases.current(self.lease_name)
                holder = None if current is None else current.holder
                raise RuntimeError(
                    f"node id {self.node_id!r} is in use by another live process ({holder}); "
                    "node ids must be unique"
                )
        self._lease = lease
        pipelines, active, recovering = self.describe()
        await self.pool.execute(
            """INSERT INTO runtime_nodes
                   (node_id, pipelines, active, recovering, healthy, heartbeat_at)
               VALUES ($1, $2, $3, $4, true, now())
               ON CONFLICT (node_id) DO UPDATE SET pipelines = EXCLUDED.pipelines,
                   active = EXCLUDED.active, recovering = EXCLUDED.recovering,
                   healthy = true, heartbeat_at = now()""",
            self.node_id,
            sorted(pipelines),
            active,
            recovering,
        )

    async def _run(self) -> None:
        p = self.policy
        while True:
            await asyncio.sleep(p.health_interval)
            try:
                async with asyncio.timeout(p.health_timeout):
                    await self.beat()
            except _MISSED as exc:
                self.misses += 1
                log.warning(
                    "node %s: heartbeat %s of %s missed: %r",
                    self.node_id,
                    self.misses,
                    p.failure_threshold,
                    exc,
                )
                if self.misses >= p.failure_threshold and self.healthy:
                    self.healthy = False
                    log.error(
                        "node %s: %s heartbeats missed; unhealthy, claiming no recovery work",
                        self.node_id,
                        self.misses,
                    )
                continue
            if not self.healthy:
                log.warning("node %s: heartbeats succeed again; healthy", self.node_id)
            self.misses = 0
            self.healthy = True
