"""A second process for the DistributedLock tests (run as a script, not collected).

python _lock_worker.py count DSN LOCK_NAME TASKS COUNTER_ID
    prints "ready", waits for a line on stdin, then runs TASKS tasks that each
    increment counters[COUNTER_ID] under the lock (read, sleep, write), and
    prints "done <json list of fencing tokens>".
python _lock_worker.py hold DSN LOCK_NAME TTL
    takes the lock, prints "held <fencing token>", and sleeps inside it until killed.
"""

from __future__ import annotations

import asyncio
import json
import sys

import asyncpg

from orchestrator.commands.lock import DistributedLock


async def increment(pool: asyncpg.Pool, lock_name: str, counter_id: str, tokens: list[int]) -> None:
    """One read-modify-write of the counter, under the lock: lost without it."""
    async with DistributedLock(lock_name, ttl=10, retry_interval=0.02, pool=pool) as lock:
        tokens.append(lock.fencing_token)
        async with pool.acquire() as conn:
            value = await conn.fetchval("SELECT value FROM counters WHERE id = $1", counter_id)
        await asyncio.sleep(0.01)
        async with pool.acquire() as conn:
            await conn.execute(
                "UPDATE counters SET value = $2 WHERE id = $1", counter_id, value + 1
            )


async def count(dsn: str, lock_name: str, tasks: int, counter_id: str) -> None:
    async with asyncpg.create_pool(dsn, min_size=1, max_size=tasks) as pool:
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        tokens: list[int] = []
        await asyncio.gather(
            *(increment(pool, lock_name, counter_id, tokens) for _ in range(tasks))
        )
        print("done", json.dumps(tokens), flush=True)


async def hold(dsn: str, lock_name: str, ttl: float) -> None:
    async with (
        asyncpg.create_pool(dsn, min_size=1, max_size=2) as pool,
        DistributedLock(lock_name, ttl=ttl, retry_interval=0.1, pool=pool) as lock,
    ):
        print("held", lock.fencing_token, flush=True)
        await asyncio.sleep(3600)


def main(argv: list[str]) -> None:
    mode, dsn, lock_name, *rest = argv
    if mode == "count":
        asyncio.run(count(dsn, lock_name, int(rest[0]), rest[1]))
    elif mode == "hold":
        asyncio.run(hold(dsn, lock_name, float(rest[0])))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])
