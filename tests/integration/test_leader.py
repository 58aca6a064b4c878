"""LeaderElection on real PostgreSQL: never two leaders, fail-over within a ttl."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from orchestrator.commands.leader import LeaderElection, OnElected, OnRevoked
from orchestrator.commands.leases import Lease

pytestmark = pytest.mark.integration

TTL = 2.0


@pytest.fixture
def name() -> str:
    return f"coordinator_{uuid.uuid4().hex[:8]}"


class Recorder:
    """Collects on_elected / on_revoked calls per node."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, int | None]] = []

    def elected(self, node: str) -> OnElected:
        async def call(lease: Lease) -> None:
            self.calls.append(("elected", node, lease.epoch))

        return call

    def revoked(self, node: str) -> OnRevoked:
        async def call() -> None:
            self.calls.append(("revoked", node, None))

        return call


async def sample(electors: list[LeaderElection], seconds: float) -> list[int]:
    """How many electors believe they lead, every 100 ms (local belief, no I/O)."""
    counts = []
    for _ in range(int(seconds / 0.1)):
        counts.append(sum(e.leading for e in electors))
        await asyncio.sleep(0.1)
    return counts


async def test_three_electors_never_overlap_and_fail_over_within_a_ttl(
    pool: asyncpg.Pool, name: str
) -> None:
    rec = Recorder()
    electors = [
        LeaderElection(
            name, f"node-{i}", TTL, pool=pool,
            on_elected=rec.elected(f"node-{i}"), on_revoked=rec.revoked(f"node-{i}"),
        )
        for i in range(3)
    ]  # fmt: skip
    tasks = [asyncio.create_task(e.run()) for e in electors]
    loop = asyncio.get_running_loop()
    try:
        counts = await sample(electors, 3.0)
        assert max(counts) == 1, counts
        assert counts[-10:] == [1] * 10  # a leader was elected and kept
        [first] = [i for i, e in enumerate(electors) if e.leading]
        assert await electors[0].leader() == f"node-{first}"
        assert rec.calls == [("elected", f"node-{first}", electors[first].fencing_token)]

        # Crash the leader: its task dies without releasing; the lease must lapse.
        tasks[first].cancel()
        await asyncio.gather(tasks[first], return_exceptions=True)
        crashed_at = loop.time()
        counts = []
        while not any(e.leading for i, e in enumerate(electors) if i != first):
            counts.append(sum(e.leading for e in electors))  # the dead one still counts
            assert loop.time() - crashed_at < TTL + electors[0].retry_interval + 2.0
            await asyncio.sleep(0.05)
        counts += await sample(electors, 1.0)
        assert max(counts) == 1, counts
        [second] = [i for i, e in enumerate(electors) if e.leading]
        assert second != first
        dead = electors[first].lease
        assert dead is not None and electors[second].fencing_token == dead.epoch + 1
        assert rec.calls[-1] == ("elected", f"node-{second}", electors[second].fencing_token)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def test_leader_that_loses_its_lease_steps_down_and_is_told(
    pool: asyncpg.Pool, name: str
) -> None:
    rec = Recorder()
    election = LeaderElection(
        name, "node-a", TTL, pool=pool, on_elected=rec.elected("a"), on_revoked=rec.revoked("a")
    )
    async with election:
        changes = election.changes()
        assert await asyncio.wait_for(anext(changes), timeout=5) is True
        assert await election.is_leader()
        await pool.execute(  # someone else holds it now (as after a long pause of ours)
            "UPDATE leases SET holder = 'intruder', epoch = epoch + 1,"
            " expires_at = now() + interval '1 hour' WHERE name = $1",
            election.lease_name,
        )
        assert await asyncio.wait_for(anext(changes), timeout=TTL) is False
        assert not await election.is_leader()
        assert election.fencing_token is None
    assert [call[0] for call in rec.calls] == ["elected", "revoked"]
    assert await election.leader() == "intruder"


async def test_polling_is_leader_as_in_the_seed(pool: asyncpg.Pool, name: str) -> None:
    """No background task: each call campaigns or renews when due."""
    rec = Recorder()
    a = LeaderElection(name, "a", TTL, pool=pool, on_revoked=rec.revoked("a"))
    b = LeaderElection(name, "b", TTL, pool=pool, retry_interval=0.1)
    assert await a.is_leader()
    for _ in range(15):  # 1.5 s: a's lease would have lapsed without renewals on call
        assert await a.is_leader()
        assert not await b.is_leader()
        await asyncio.sleep(0.1)

    await a.stop()  # a clean hand-over: release, so b need not wait for the ttl
    assert rec.calls == [("revoked", "a", None)]
    for _ in range(20):
        if await b.is_leader():
            break
        await asyncio.sleep(0.1)
    assert b.leading and not a.leading
    await b.stop()
