"""One coordination contract, run against both backends: PostgreSQL leases and etcd.

What locks, leader election and execution writers rely on: one holder at a time,
every tenure a higher fencing epoch than the last, a stale holder refused, expiry
decided by the server, and (etcd) a 3-member cluster that keeps all of it while a
member is killed. Absolute epoch values differ (a PostgreSQL counter, an etcd
revision); the contract only speaks of their order.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from orchestrator.commands import (
    CoordinationStore,
    DistributedLock,
    EtcdLeaseStore,
    LeaderElection,
    LeaseLost,
    LeaseStore,
)
from orchestrator.devstack import EtcdCluster, EtcdServer

pytestmark = pytest.mark.integration

TTL = 2.0  # etcd's shortest lease with the devstack's election timeout


@pytest.fixture(params=["postgresql", "etcd"])
async def store(
    request: pytest.FixtureRequest, pool: asyncpg.Pool, etcd: EtcdServer
) -> AsyncIterator[CoordinationStore]:
    if request.param == "postgresql":
        yield LeaseStore(pool)
        return
    etcd_store = EtcdLeaseStore([f"http://{etcd.endpoint}"])
    try:
        yield etcd_store
    finally:
        await etcd_store.close()


@pytest.fixture
def name() -> str:
    return f"contract/{uuid.uuid4().hex[:8]}"


async def test_one_holder_at_a_time_and_current_names_it(
    store: CoordinationStore, name: str
) -> None:
    lease = await store.acquire(name, "a", ttl=30)
    assert lease is not None and lease.holder == "a"
    assert await store.acquire(name, "b", ttl=30) is None
    current = await store.current(name)
    assert current is not None and (current.holder, current.epoch) == ("a", lease.epoch)


async def test_only_one_of_many_concurrent_acquirers_wins(
    store: CoordinationStore, name: str
) -> None:
    results = await asyncio.gather(*(store.acquire(name, f"h{i}", ttl=30) for i in range(10)))
    assert len([lease for lease in results if lease is not None]) == 1


async def test_renewal_keeps_the_epoch_and_release_lets_the_next_taker_in_higher(
    store: CoordinationStore, name: str
) -> None:
    lease = await store.acquire(name, "a", ttl=30)
    assert lease is not None
    renewed = await store.renew(lease)
    assert renewed.epoch == lease.epoch
    assert await store.release(renewed)
    assert await store.current(name) is None
    assert not await store.release(renewed)  # twice: no longer ours
    nxt = await store.acquire(name, "b", ttl=30)
    assert nxt is not None and nxt.epoch > lease.epoch


async def test_an_expired_holder_is_fenced_by_the_next_tenure(
    store: CoordinationStore, name: str
) -> None:
    old = await store.acquire(name, "a", ttl=TTL)
    assert old is not None
    new = None
    for _ in range(60):  # until the server says the lease lapsed (never our clock)
        new = await store.acquire(name, "b", ttl=30)
        if new is not None:
            break
        await asyncio.sleep(0.1)
    assert new is not None and new.epoch > old.epoch
    with pytest.raises(LeaseLost):
        await store.renew(old)
    assert not await store.release(old)
    current = await store.current(name)
    assert current is not None and current.holder == "b"


async def test_the_same_holder_taking_it_again_starts_a_new_tenure(
    store: CoordinationStore, name: str
) -> None:
    first = await store.acquire(name, "a", ttl=30)
    again = await store.acquire(name, "a", ttl=30)
    assert first is not None and again is not None and again.epoch > first.epoch
    with pytest.raises(LeaseLost):
        await store.renew(first)


async def test_a_takeover_clears_the_highest_epoch_the_log_holds(
    store: CoordinationStore, name: str
) -> None:
    lease = await store.acquire(name, "a", ttl=30, min_epoch=10**9)
    assert lease is not None and lease.epoch >= 10**9
    await store.release(lease)
    later = await store.acquire(f"{name}-other", "b", ttl=30)
    again = await store.acquire(name, "c", ttl=30)
    assert later is not None and again is not None and again.epoch > lease.epoch


async def test_held_lists_live_leases_by_prefix(store: CoordinationStore, name: str) -> None:
    for suffix in ("x", "y"):
        assert await store.acquire(f"{name}/{suffix}", suffix, ttl=30) is not None
    assert await store.acquire(f"{name}-other", "z", ttl=30) is not None
    held = await store.held(f"{name}/")
    assert [(lease.name, lease.holder) for lease in held] == [
        (f"{name}/x", "x"),
        (f"{name}/y", "y"),
    ]


async def test_a_lock_keeps_read_modify_write_exact(store: CoordinationStore, name: str) -> None:
    """Ten workers each add one to a shared value, with a pause between read and write."""
    value = {"n": 0}

    async def worker(i: int) -> None:
        lock = DistributedLock(name, ttl=30, retry_interval=0.05, store=store, holder=f"w{i}")
        async with lock:
            seen = value["n"]
            await asyncio.sleep(0.02)
            value["n"] = seen + 1

    await asyncio.gather(*(worker(i) for i in range(10)))
    assert value["n"] == 10


async def test_one_leader_and_a_higher_fencing_token_after_failover(
    store: CoordinationStore, name: str
) -> None:
    electors = [
        LeaderElection(name, f"node-{i}", TTL, store=store, retry_interval=0.2) for i in range(3)
    ]
    tasks = [asyncio.create_task(e.run()) for e in electors]
    try:
        leaders = await _settled_leaders(electors)
        assert len(leaders) == 1
        first = leaders[0]
        token = electors[first].fencing_token
        tasks[first].cancel()  # crash: no release, the lease must lapse
        await asyncio.gather(tasks[first], return_exceptions=True)
        others = [e for i, e in enumerate(electors) if i != first]
        for _ in range(100):
            if any(e.leading for e in others):
                break
            await asyncio.sleep(0.1)
        now = [i for i, e in enumerate(electors) if e.leading and i != first]
        assert len(now) == 1
        assert token is not None and (electors[now[0]].fencing_token or 0) > token
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _settled_leaders(electors: list[LeaderElection]) -> list[int]:
    for _ in range(100):
        leaders = [i for i, e in enumerate(electors) if e.leading]
        if leaders:
            await asyncio.sleep(0.5)  # and nobody else joins it
            return [i for i, e in enumerate(electors) if e.leading]
        await asyncio.sleep(0.1)
    return []


async def test_etcd_cluster_keeps_locks_exclusive_while_a_member_is_killed(
    etcd_cluster: EtcdCluster,
) -> None:
    """The client's own member is SIGKILLed mid-run: it moves to another member,
    increments stay exact, and epochs taken after the kill are above those before."""
    endpoints = [f"http://{e}" for e in etcd_cluster.endpoints]
    stores = [EtcdLeaseStore(endpoints, timeout=2.0) for _ in range(3)]
    name = f"contract/{uuid.uuid4().hex[:8]}"
    value = {"n": 0}
    tokens: list[int] = []
    halfway = asyncio.Event()

    async def worker(store: EtcdLeaseStore, rounds: int) -> None:
        for _ in range(rounds):
            lock = DistributedLock(name, ttl=10, retry_interval=0.05, store=store, timeout=60)
            async with lock:
                tokens.append(lock.fencing_token or 0)
                seen = value["n"]
                await asyncio.sleep(0.01)
                value["n"] = seen + 1
                if value["n"] == 5:
                    halfway.set()

    try:
        work = asyncio.gather(*(worker(s, 10) for s in stores))
        await halfway.wait()
        await etcd_cluster.kill(1)  # every client starts on the first endpoint
        await work
        assert value["n"] == 30
        assert tokens == sorted(tokens) and len(set(tokens)) == 30
        await etcd_cluster.resume(1)
        assert await stores[0].acquire(f"{name}-after", "z", ttl=5) is not None
    finally:
        for s in stores:
            await s.close()
