"""DistributedLock on real PostgreSQL, across two processes."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import asyncpg
import pytest

from orchestrator.commands.errors import LeaseLost, LockNotConfigured, LockTimeout
from orchestrator.commands.leases import LeaseStore
from orchestrator.commands.lock import DistributedLock, list_locks
from orchestrator.state import DistributedLock as SeedLock
from orchestrator.state import StateRuntime, use_runtime

pytestmark = pytest.mark.integration

WORKER = Path(__file__).with_name("_lock_worker.py")
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
async def dsn(dsn: str) -> str:
    """The module's database (read-model tables), with a counters table."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CREATE TABLE counters (id text PRIMARY KEY, value integer NOT NULL)")
    finally:
        await conn.close()
    return dsn


@pytest.fixture
def name() -> str:
    return f"resource_{uuid.uuid4().hex[:8]}"


async def start_worker(*args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, str(WORKER), *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, cwd=REPO,
    )  # fmt: skip


async def read_line(proc: asyncio.subprocess.Process) -> str:
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), timeout=30)
    assert line, f"worker exited early with code {await proc.wait()}"
    return line.decode().strip()


async def increment(
    pool: asyncpg.Pool, counter: str, lock_name: str | None, tokens: list[int]
) -> None:
    """Read, pause, write: two of these interleaved lose an update."""

    async def body() -> None:
        async with pool.acquire() as conn:
            value = await conn.fetchval("SELECT value FROM counters WHERE id = $1", counter)
        await asyncio.sleep(0.01)
        async with pool.acquire() as conn:
            await conn.execute("UPDATE counters SET value = $2 WHERE id = $1", counter, value + 1)

    if lock_name is None:
        await body()
        return
    async with DistributedLock(lock_name, ttl=10, retry_interval=0.02, pool=pool) as lock:
        tokens.append(lock.fencing_token)
        await body()


async def test_twenty_increments_from_two_processes_are_exact(
    pool: asyncpg.Pool, dsn: str, name: str
) -> None:
    counter = name
    await pool.execute("INSERT INTO counters VALUES ($1, 0)", counter)
    worker = await start_worker("count", dsn, name, "10", counter)
    try:
        assert await read_line(worker) == "ready"
        assert worker.stdin is not None
        worker.stdin.write(b"go\n")
        await worker.stdin.drain()
        tokens: list[int] = []
        await asyncio.gather(*(increment(pool, counter, name, tokens) for _ in range(10)))
        done, theirs = (await read_line(worker)).split(" ", 1)
        assert done == "done"
        assert await worker.wait() == 0
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()

    assert await pool.fetchval("SELECT value FROM counters WHERE id = $1", counter) == 20
    all_tokens = tokens + json.loads(theirs)
    assert sorted(all_tokens) == list(range(1, 21))  # one tenure each, fenced in order


async def test_without_the_lock_the_same_increments_lose_updates(pool: asyncpg.Pool) -> None:
    """Control: proves the test above would catch a lock that does not exclude."""
    counter = f"nolock_{uuid.uuid4().hex[:8]}"
    await pool.execute("INSERT INTO counters VALUES ($1, 0)", counter)
    await asyncio.gather(*(increment(pool, counter, None, []) for _ in range(10)))
    assert await pool.fetchval("SELECT value FROM counters WHERE id = $1", counter) < 10


async def test_holder_killed_inside_the_lock_frees_it_after_the_ttl(
    pool: asyncpg.Pool, dsn: str, name: str
) -> None:
    ttl, retry = 2.0, 0.2
    store = LeaseStore(pool)
    worker = await start_worker("hold", dsn, name, str(ttl))
    try:
        held, epoch = (await read_line(worker)).split()
        assert held == "held"
    finally:
        worker.send_signal(signal.SIGKILL)
        await worker.wait()
    loop = asyncio.get_running_loop()
    killed_at = loop.time()
    dead = await store.current(f"lock/{name}")
    assert dead is not None and dead.epoch == int(epoch)

    lock = DistributedLock(name, ttl=ttl, retry_interval=retry, pool=pool)
    with pytest.raises(LockTimeout):  # still held: the dead holder's ttl has not run out
        await lock.acquire(timeout=0.1)
    async with lock:
        waited = loop.time() - killed_at
        assert lock.lease is not None
        assert lock.lease.acquired_at >= dead.expires_at  # per the database's clock
        assert lock.fencing_token == dead.epoch + 1
    assert waited < ttl + retry + 3.0  # loose: it did get it, about one ttl later


async def test_lease_lost_while_held_is_reported_and_raised_on_exit(
    pool: asyncpg.Pool, name: str
) -> None:
    lock = DistributedLock(name, ttl=0.9, retry_interval=0.05, pool=pool)
    with pytest.raises(LeaseLost) as raised:
        async with lock:
            lock.check()
            await pool.execute(  # another party takes it over (as after a long pause)
                "UPDATE leases SET holder = 'thief', epoch = epoch + 1 WHERE name = $1",
                lock.lease_name,
            )
            await asyncio.wait_for(lock.lost.wait(), timeout=5)
            assert not lock.held
            with pytest.raises(LeaseLost):
                lock.check()
    assert raised.value.current_holder == "thief"
    assert await LeaseStore(pool).current(lock.lease_name) is not None  # the thief's, untouched


async def test_failing_block_keeps_its_error_and_releases(pool: asyncpg.Pool, name: str) -> None:
    lock = DistributedLock(name, ttl=30, pool=pool)
    with pytest.raises(KeyError):
        async with lock:
            raise KeyError("boom")
    assert await LeaseStore(pool).current(lock.lease_name) is None


async def test_locks_are_listed_in_the_seed_shape_while_held(pool: asyncpg.Pool, name: str) -> None:
    async with DistributedLock(name, ttl=300, pool=pool, holder="task_analysis") as lock:
        [info] = await list_locks(pool, prefix=name)
        assert info.epoch == lock.fencing_token
        shown = info.to_dict()
        assert shown["resource"] == name
        assert shown["holder"] == "task_analysis"
        assert shown["ttl"] == 300
        assert isinstance(shown["acquired_at"], str) and shown["acquired_at"].endswith("Z")
    assert await list_locks(pool, prefix=name) == []


async def test_lock_without_pool_uses_the_configured_default(pool: asyncpg.Pool, name: str) -> None:
    with pytest.raises(LockNotConfigured):
        async with SeedLock(name=name, ttl=300, retry_interval=1.0):
            pass
    # The seed's lock asks the runtime in use for its leases (only those are read).
    runtime = cast(StateRuntime, SimpleNamespace(leases=LeaseStore(pool)))
    with use_runtime(runtime):
        async with SeedLock(name=name, ttl=300, retry_interval=1.0) as lock:
            assert lock.fencing_token == 1
