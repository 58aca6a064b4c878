"""Presence: knowing at once that a lease holder's process is dead.

A lease expires after its ttl; waiting that long after a crash is what made a resume
sit ~30 s in silence. A process (its node id) therefore announces itself:

- it holds a PostgreSQL **session-level advisory lock** keyed by its holder id on one
  connection kept for its lifetime; the server drops the lock the instant that session
  ends (process killed, machine gone, connection cut);
- it writes a marker lease ``presence:<holder>`` (same ``leases`` table, no schema
  change) saying "this holder announces its presence", so that a holder that never
  announced (an older process, a ``DistributedLock``) is never judged dead this way.

``LeaseStore.acquire`` asks :func:`holder_gone` when a lease is held by someone else:
if that holder announced its presence and its advisory lock is free, its session is
gone and the lease is taken over at once (a new epoch, as always; fencing keeps a
holder that was only cut off from the database harmless).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import zlib
from typing import Any

import asyncpg

from orchestrator.events import Outage, cancel_and_wait

log = logging.getLogger(__name__)

_CLASS_ID = 0x4F53  # advisory-lock namespace of this product ("OS")
MARKER_TTL = 365 * 24 * 3600.0
"""The marker lease outlives any process; a crashed holder's marker stays, harmless."""
# As ``leases.TRANSIENT_ERRORS`` (which imports this module): a server restarting answers
# "the database system is starting up" (OperatorInterventionError) for a while.
_TRANSIENT = (
    OSError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.OperatorInterventionError,
    asyncpg.TooManyConnectionsError,
    asyncpg.InternalClientError,
)


def presence_key(holder: str) -> int:
    """The advisory-lock object id of ``holder`` (a signed int4)."""
    crc = zlib.crc32(holder.encode("utf-8"))
    return crc - 2**32 if crc >= 2**31 else crc


def marker_name(holder: str) -> str:
    return f"presence:{holder}"


async def holder_gone(conn: asyncpg.Connection, holder: str, table: str) -> bool:
    """Whether ``holder`` announced its presence and its session has ended."""
    announced = await conn.fetchval(
        f"SELECT 1 FROM {table} WHERE name = $1 AND holder = $2", marker_name(holder), holder
    )
    if announced is None:
        return False
    free = await conn.fetchval(
        "SELECT pg_try_advisory_lock($1, $2)", _CLASS_ID, presence_key(holder)
    )
    if free:
        await conn.execute("SELECT pg_advisory_unlock($1, $2)", _CLASS_ID, presence_key(holder))
    return bool(free)


async def live_holders(conn: asyncpg.Connection, holders: list[str], table: str) -> set[str]:
    """Of ``holders``, those not known dead: never announced, or their session still
    holds the advisory lock. Reads ``pg_locks`` only, so it takes no lock itself."""
    if not holders:
        return set()
    announced = {
        r["holder"]
        for r in await conn.fetch(
            f"SELECT holder FROM {table} WHERE name = ANY($1::text[])",
            [marker_name(h) for h in holders],
        )
    }
    held = {
        r["objid"]
        for r in await conn.fetch(
            "SELECT objid::text::bigint AS objid FROM pg_locks WHERE locktype = 'advisory'"
            " AND classid = $1::bigint::text::oid AND objsubid = 2 AND granted"
            " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            _CLASS_ID,
        )
    }
    return {h for h in holders if h not in announced or presence_key(h) & 0xFFFFFFFF in held}


class Presence:
    """Holds ``holder``'s advisory lock on a connection of its own while it runs, and
    takes it again (with bounded backoff, logged once) after a database outage."""

    def __init__(self, pool: asyncpg.Pool, holder: str, leases: Any) -> None:
        self._pool = pool
        self._holder = holder
        self._leases = leases
        self._conn: Any = None
        self._task: asyncio.Task[None] | None = None

    @property
    def held(self) -> bool:
        return self._conn is not None and not self._conn.is_closed()

    async def start(self) -> None:
        """Announce presence now (raises if the database is away); keep it announced."""
        if self._task is not None:
            return
        if not await self._announce():
            log.debug("presence of %s is already held by another session", self._holder)
            return  # another runtime with this node id (same process, or alive elsewhere)
        self._task = asyncio.create_task(self._keep(), name=f"presence {self._holder}")

    async def _announce(self) -> bool:
        conn = await self._pool.acquire()
        try:
            got = await conn.fetchval(
                "SELECT pg_try_advisory_lock($1, $2)", _CLASS_ID, presence_key(self._holder)
            )
        except BaseException:
            await self._pool.release(conn)
            raise
        if not got:
            await self._pool.release(conn)
            return False
        self._conn = conn
        await self._leases.acquire(marker_name(self._holder), self._holder, MARKER_TTL)
        return True

    async def _keep(self) -> None:
        outage = Outage(f"presence of {self._holder}: PostgreSQL", log)
        while True:
            await asyncio.sleep(1.0 if not outage.ongoing else 0)
            try:
                if not self.held:
                    await self._drop_conn()
                    await self._announce()
                else:
                    await self._conn.fetchval("SELECT 1")
                outage.recovered()
            except _TRANSIENT as exc:
                await self._drop_conn()
                await asyncio.sleep(outage.failed(exc))

    async def _drop_conn(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await self._pool.release(conn, timeout=1)

    async def stop(self) -> None:
        """Withdraw: release the marker and the advisory lock (its session ends)."""
        task, self._task = self._task, None
        await cancel_and_wait(task)
        conn = self._conn
        if conn is not None and not conn.is_closed():
            with contextlib.suppress(Exception):
                await conn.execute(
                    f"DELETE FROM {self._leases.table} WHERE name = $1 AND holder = $2",
                    marker_name(self._holder),
                    self._holder,
                )
                await conn.execute(
                    "SELECT pg_advisory_unlock($1, $2)", _CLASS_ID, presence_key(self._holder)
                )
        await self._drop_conn()
