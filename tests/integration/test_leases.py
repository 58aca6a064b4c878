"""Leases on real PostgreSQL: epochs fence, the database clock decides expiry."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import pytest

from orchestrator.commands.errors import LeaseLost, LockTimeout
from orchestrator.commands.leases import Lease, LeaseStore

pytestmark = pytest.mark.integration


@pytest.fixture
def store(pool: asyncpg.Pool) -> LeaseStore:
    return LeaseStore(pool)


@pytest.fixture
def name() -> str:
    return f"lease/{uuid.uuid4().hex[:8]}"


async def granted(store: LeaseStore, name: str, holder: str, *, ttl: float) -> Lease:
    """The lease ``holder`` acquires, asserting it was granted."""
    lease = await store.acquire(name, holder, ttl=ttl)
    assert lease is not None
    return lease


async def wait_until_expired_per_db(pool: asyncpg.Pool, name: str) -> None:
    """Sleep until the server's clock is past the lease's expiry (never the local clock)."""
    for _ in range(100):
        left = await pool.fetchval(
            "SELECT extract(epoch FROM expires_at - now()) FROM leases WHERE name = $1", name
        )
        if left <= 0:
            return
        await asyncio.sleep(float(left) + 0.01)
    raise AssertionError(f"lease {name} never expired")


async def test_first_acquire_gets_epoch_one_and_blocks_other_holders(
    store: LeaseStore, name: str
) -> None:
    lease = await granted(store, name, "a", ttl=30)
    assert (lease.name, lease.holder, lease.epoch, lease.ttl) == (name, "a", 1, 30.0)
    assert lease.expires_at > lease.acquired_at

    assert await store.acquire(name, "b", ttl=30) is None
    assert await store.current(name) == lease


async def test_only_one_of_many_concurrent_acquirers_wins(store: LeaseStore, name: str) -> None:
    results = await asyncio.gather(*(store.acquire(name, f"h{i}", ttl=30) for i in range(10)))
    winners = [lease for lease in results if lease is not None]
    assert len(winners) == 1
    assert winners[0].epoch == 1


async def test_renew_extends_and_keeps_epoch(store: LeaseStore, name: str) -> None:
    lease = await granted(store, name, "a", ttl=5)
    renewed = await store.renew(lease, ttl=60)
    assert renewed.epoch == lease.epoch
    assert renewed.acquired_at == lease.acquired_at
    assert renewed.expires_at > lease.expires_at
    assert renewed.ttl == 60.0


async def test_release_frees_it_and_the_next_taker_gets_the_next_epoch(
    store: LeaseStore, name: str
) -> None:
    first = await granted(store, name, "a", ttl=30)
    assert await store.release(first) is True
    assert await store.current(name) is None

    second = await granted(store, name, "b", ttl=30)
    assert second.epoch == first.epoch + 1
    assert await store.release(first) is False  # not ours any more: nothing changes
    assert await store.current(name) == second


async def test_expired_lease_is_taken_with_next_epoch_and_old_holder_is_fenced(
    store: LeaseStore, pool: asyncpg.Pool, name: str
) -> None:
    old = await granted(store, name, "a", ttl=0.5)
    assert await store.acquire(name, "b", ttl=30) is None

    await wait_until_expired_per_db(pool, name)
    assert await store.current(name) is None
    new = await granted(store, name, "b", ttl=30)
    assert new.epoch == old.epoch + 1
    assert new.acquired_at >= old.expires_at

    with pytest.raises(LeaseLost) as lost:
        await store.renew(old)
    assert (lost.value.name, lost.value.holder, lost.value.epoch) == (name, "a", old.epoch)
    assert (lost.value.current_holder, lost.value.current_epoch) == ("b", new.epoch)
    assert await store.release(old) is False
    assert await store.current(name) == new


async def test_renew_after_expiry_fails_even_if_nobody_took_it(
    store: LeaseStore, pool: asyncpg.Pool, name: str
) -> None:
    lease = await granted(store, name, "a", ttl=0.3)
    await wait_until_expired_per_db(pool, name)
    with pytest.raises(LeaseLost):
        await store.renew(lease)


async def test_same_holder_taking_it_again_starts_a_new_tenure(
    store: LeaseStore, name: str
) -> None:
    """A restarted process reusing its id must fence its previous incarnation."""
    before = await granted(store, name, "node-1", ttl=30)
    after = await granted(store, name, "node-1", ttl=30)
    assert after.epoch == before.epoch + 1
    with pytest.raises(LeaseLost):
        await store.renew(before)


async def test_acquire_wait_times_out_while_held_and_succeeds_once_released(
    store: LeaseStore, name: str
) -> None:
    held = await granted(store, name, "a", ttl=30)
    with pytest.raises(LockTimeout) as timeout:
        await store.acquire_wait(name, "b", ttl=30, retry_interval=0.05, timeout=0.3)
    assert timeout.value.retriable

    async def release_soon() -> None:
        await asyncio.sleep(0.2)
        await store.release(held)

    releaser = asyncio.create_task(release_soon())
    got = await store.acquire_wait(name, "b", ttl=30, retry_interval=0.05, timeout=10)
    await releaser
    assert (got.holder, got.epoch) == ("b", held.epoch + 1)


async def test_held_lists_live_leases_by_prefix(store: LeaseStore, name: str) -> None:
    a = await granted(store, f"{name}/x", "a", ttl=30)
    b = await granted(store, f"{name}/y", "b", ttl=30)
    await granted(store, f"{name}_z", "c", ttl=30)  # `_` is not a wildcard
    assert await store.held(f"{name}/") == [a, b]
    await store.release(a)
    assert await store.held(f"{name}/") == [b]
