"""The devstack restarts PostgreSQL in place (same port, same data) and reaps a server
that died under it: no zombie postmaster is left behind."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import asyncpg

from orchestrator.devstack import PostgresServer


def _zombie(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return any(line.startswith("State:") and "Z" in line for line in status.splitlines())


async def test_postgres_restarts_in_place_and_is_reaped(own_postgres: PostgresServer) -> None:
    conn = await asyncpg.connect(own_postgres.dsn)
    await conn.execute("CREATE TABLE kept (n int); INSERT INTO kept VALUES (7)")
    await conn.close()
    port = own_postgres.port

    await own_postgres.restart(kill=True)  # a crash, then the same server again
    assert own_postgres.port == port
    conn = await asyncpg.connect(own_postgres.dsn)
    assert await conn.fetchval("SELECT n FROM kept") == 7
    await conn.close()

    await own_postgres.restart()  # a clean stop and start
    assert own_postgres.ready

    pid = own_postgres.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)  # dies under the devstack's feet
    await own_postgres.kill()  # reaps it (and anything it forked)
    assert not own_postgres.ready
    assert not _zombie(pid)
    await own_postgres.resume()
    conn = await asyncpg.connect(own_postgres.dsn)
    assert await conn.fetchval("SELECT n FROM kept") == 7
    await conn.close()
