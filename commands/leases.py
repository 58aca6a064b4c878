"""Leases with fencing epochs, kept in the PostgreSQL ``leases`` table.

A lease is a named, time-limited claim: ``(name, holder, epoch, expires_at)``.
It is the one primitive under execution ownership (design §3),
``DistributedLock`` and ``LeaderElection``.

Why these rules:

* **The database's clock decides expiry.** Every statement compares with
  ``now()`` on the server, so holders on machines with skewed clocks still agree
  on who holds what. Local clocks are only used to stop *believing* we hold a
  lease early (see ``LeaderElection``), never to decide that it is free.
* **Every acquisition is a new tenure with a new epoch** (``epoch + 1``), even
  when the same holder takes the lease again (a restarted process reusing its
  node id must fence off its own previous incarnation). Renewal keeps the
  epoch. Release keeps the epoch too, so the next taker gets ``epoch + 1``.
  The epoch is the fencing token that writers stamp on events: a fold drops
  events whose epoch is lower than the current one, so a zombie that still
  believes it holds the lease cannot corrupt state.
* **One atomic statement per operation** (an upsert guarded by ``WHERE``): no
  read-then-write race, no explicit transaction, one round trip.
* Holder ids must be unique per live contender. ``DistributedLock`` makes a
  fresh one per lock object; ``LeaderElection`` uses the node id.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import socket
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import asyncpg

from orchestrator.commands.errors import (
    CoordinationUnavailable,
    LeaseLost,
    LockNotConfigured,
    LockTimeout,
)
from orchestrator.commands.presence import holder_gone

log = logging.getLogger(__name__)

TRANSIENT_ERRORS: tuple[type[Exception], ...] = (
    OSError,
    TimeoutError,
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,
    asyncpg.OperatorInterventionError,
    asyncpg.TooManyConnectionsError,
    # What asyncpg raises when a connection broke mid-operation (e.g. "cannot switch to
    # state 15; another operation is in progress" on release after a server SIGKILL):
    # the pool discards that connection, so the next try gets a fresh one.
    asyncpg.InternalClientError,
    # No etcd member answered (``commands.etcd_leases``).
    CoordinationUnavailable,
)
"""Failures of a lease call that trying again later can cure (network, server restart)."""

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


@dataclass(frozen=True, slots=True)
class Lease:
    """A lease as granted by the database; times are the database's clock.

    ``epoch`` is the fencing token. ``acquired_at`` is when this tenure began
    (renewals keep it), ``ttl`` the duration last granted.
    """

    name: str
    holder: str
    epoch: int
    expires_at: datetime
    acquired_at: datetime
    ttl: float


def check_ttl(ttl: float) -> float:
    """``ttl`` as a float, refused unless positive (every lease backend's rule)."""
    if not ttl > 0:
        raise ValueError(f"ttl must be > 0 seconds, got {ttl!r}")
    return float(ttl)


def _lease(name: str, holder: str, row: Any) -> Lease:
    ttl = row["ttl_seconds"]
    if ttl is None:  # a row written by something that did not record its ttl
        ttl = (row["expires_at"] - row["acquired_at"]).total_seconds()
    return Lease(
        name=name,
        holder=holder,
        epoch=int(row["epoch"]),
        expires_at=row["expires_at"],
        acquired_at=row["acquired_at"],
        ttl=float(ttl),
    )


class LeaseStore:
    """Acquire, renew and release leases in one PostgreSQL table.

    ``pool`` is the process's asyncpg pool; one connection is borrowed per call.
    ``table`` is a ``[schema.]table`` name with the ``leases`` columns.
    """

    def __init__(self, pool: asyncpg.Pool, *, table: str = "leases") -> None:
        if not _IDENT.match(table):
            raise ValueError(f"table: {table!r} is not a [schema.]table name")
        self._pool = pool
        self._table = table
        t = table
        # A row is free when nobody holds it or its time is up (server clock).
        # The same holder may take it again, starting a new tenure (epoch + 1).
        self._sql_acquire = f"""
            INSERT INTO {t} AS l (name, holder, epoch, acquired_at, expires_at, ttl_seconds)
            VALUES ($1, $2, GREATEST(1, $4::bigint), now(), now() + make_interval(secs => $3), $3)
            ON CONFLICT (name) DO UPDATE SET
                holder = EXCLUDED.holder,
                epoch = GREATEST(l.epoch + 1, $4::bigint),
                acquired_at = EXCLUDED.acquired_at,
                expires_at = EXCLUDED.expires_at,
                ttl_seconds = EXCLUDED.ttl_seconds
            WHERE l.holder IS NULL OR l.expires_at IS NULL OR l.expires_at <= now()
                OR l.holder = EXCLUDED.holder
            RETURNING epoch, acquired_at, expires_at, ttl_seconds"""
        self._sql_renew = f"""
            UPDATE {t} SET expires_at = now() + make_interval(secs => $4), ttl_seconds = $4
            WHERE name = $1 AND holder = $2 AND epoch = $3 AND expires_at > now()
            RETURNING epoch, acquired_at, expires_at, ttl_seconds"""
        self._sql_release = f"""
            UPDATE {t} SET holder = NULL, expires_at = now()
            WHERE name = $1 AND holder = $2 AND epoch = $3
            RETURNING epoch"""
        self._sql_current = f"""
            SELECT name, holder, epoch, acquired_at, expires_at, ttl_seconds FROM {t}
            WHERE name = $1 AND holder IS NOT NULL AND expires_at > now()"""
        self._sql_row = f"SELECT holder, epoch, expires_at FROM {t} WHERE name = $1"
        self._sql_take_over = f"""
            UPDATE {t} SET holder = $4, epoch = GREATEST(epoch + 1, $6::bigint),
                acquired_at = now(), expires_at = now() + make_interval(secs => $5),
                ttl_seconds = $5
            WHERE name = $1 AND holder = $2 AND epoch = $3
            RETURNING epoch, acquired_at, expires_at, ttl_seconds"""
        self._sql_held = f"""
            SELECT name, holder, epoch, acquired_at, expires_at, ttl_seconds FROM {t}
            WHERE holder IS NOT NULL AND expires_at > now() AND name LIKE $1
            ORDER BY name"""

    @property
    def pool(self) -> asyncpg.Pool:
        """The pool this store borrows connections from."""
        return self._pool

    @property
    def table(self) -> str:
        """The ``[schema.]table`` holding the leases."""
        return self._table

    async def acquire(
        self, name: str, holder: str, ttl: float, *, min_epoch: int = 0
    ) -> Lease | None:
        """Take the lease if it is free, expired, or already ``holder``'s; else ``None``.

        Success always starts a new tenure: the returned epoch is one more than
        the previous holder's, and at least ``min_epoch`` (a writer taking an execution
        over passes one above every epoch its log holds, so its takeover always wins).
        """
        ttl = check_ttl(ttl)
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(self._sql_acquire, name, holder, ttl, min_epoch)
            if row is None:
                row = await self._take_from_gone(conn, name, holder, ttl, min_epoch)
        if row is None:
            return None
        lease = _lease(name, holder, row)
        log.debug("lease %s acquired by %s at epoch %s", name, holder, lease.epoch)
        return lease

    async def _take_from_gone(
        self, conn: asyncpg.Connection, name: str, holder: str, ttl: float, min_epoch: int
    ) -> Any:
        """The lease's row if its live holder is known dead (``commands.presence``) and
        it was taken over now; else ``None``."""
        current = await conn.fetchrow(self._sql_row, name)
        if current is None or current["holder"] is None or current["holder"] == holder:
            return None
        gone = current["holder"]
        if name.startswith("presence:") or not await holder_gone(conn, gone, self._table):
            return None
        row = await conn.fetchrow(
            self._sql_take_over, name, gone, current["epoch"], holder, ttl, min_epoch
        )
        if row is not None:
            log.info(
                "lease %s: holder %s is gone (its database session ended); taken over by %s "
                "at epoch %s without waiting for the ttl",
                name,
                gone,
                holder,
                row["epoch"],
            )
        return row

    async def acquire_wait(
        self,
        name: str,
        holder: str,
        ttl: float,
        retry_interval: float,
        timeout: float | None = None,  # noqa: ASYNC109 (the lock API: retries, not one await)
    ) -> Lease:
        """``acquire`` every ``retry_interval`` seconds until it succeeds.

        Raises ``LockTimeout`` after ``timeout`` seconds (``None``: wait forever).
        """
        if not retry_interval > 0:
            raise ValueError(f"retry_interval must be > 0 seconds, got {retry_interval!r}")
        loop = asyncio.get_running_loop()
        deadline = None if timeout is None else loop.time() + timeout
        while True:
            lease = await self.acquire(name, holder, ttl)
            if lease is not None:
                return lease
            pause = retry_interval
            if deadline is not None:
                left = deadline - loop.time()
                if left <= 0:
                    raise LockTimeout(name, holder, float(timeout or 0.0))
                pause = min(pause, left)
            await asyncio.sleep(pause)

    async def renew(self, lease: Lease, ttl: float | None = None) -> Lease:
        """Extend ``lease`` to ``now() + ttl`` (default: its last ttl), keeping its epoch.

        Raises ``LeaseLost`` if the lease has expired, been released, or been
        taken by anyone (including a new tenure of the same holder).
        """
        new_ttl = check_ttl(lease.ttl if ttl is None else ttl)
        now = None
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                self._sql_renew, lease.name, lease.holder, lease.epoch, new_ttl
            )
            if row is None:
                now = await conn.fetchrow(self._sql_row, lease.name)
        if row is None:
            raise LeaseLost(
                lease.name,
                lease.holder,
                lease.epoch,
                current_holder=None if now is None else now["holder"],
                current_epoch=None if now is None else int(now["epoch"]),
                expires_at=None if now is None else now["expires_at"],
            )
        return _lease(lease.name, lease.holder, row)

    async def release(self, lease: Lease) -> bool:
        """Give the lease up now, if it is still this tenure's; return whether it was.

        An expired lease nobody else took is still ours to release (``True``):
        nobody else held it in between, because any acquisition changes the epoch.
        """
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(self._sql_release, lease.name, lease.holder, lease.epoch)
        if row is None:
            log.debug(
                "lease %s (holder %s, epoch %s) was no longer ours at release",
                lease.name,
                lease.holder,
                lease.epoch,
            )
            return False
        return True

    async def current(self, name: str) -> Lease | None:
        """The lease's live tenure, or ``None`` if nobody holds it now (server clock)."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(self._sql_current, name)
        return None if row is None else _lease(name, row["holder"], row)

    async def held(self, prefix: str = "") -> list[Lease]:
        """Every live lease whose name starts with ``prefix``, ordered by name."""
        pattern = prefix.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(self._sql_held, pattern)
        return [_lease(r["name"], r["holder"], r) for r in rows]


class CoordinationStore(Protocol):
    """The lease contract locks, elections and writers rely on: ``LeaseStore``
    (PostgreSQL, the default) or ``commands.etcd_leases.EtcdLeaseStore``."""

    async def acquire(
        self, name: str, holder: str, ttl: float, *, min_epoch: int = 0
    ) -> Lease | None: ...

    async def renew(self, lease: Lease, ttl: float | None = None) -> Lease: ...

    async def release(self, lease: Lease) -> bool: ...

    async def current(self, name: str) -> Lease | None: ...

    async def held(self, prefix: str = "") -> list[Lease]: ...


DefaultStore = Callable[[], "CoordinationStore | None"]
"""Where a lock or election built without a pool or store finds its store, asked when it
first needs one (``orchestrator.state``'s: the leases of the process's runtime)."""


def store_for(
    pool: asyncpg.Pool | None, what: str, default: CoordinationStore | None = None
) -> CoordinationStore:
    """The ``default`` store when it is not PostgreSQL's (configuration chooses the
    backend for every lock), else a store over ``pool`` (in ``default``'s table), else
    ``default``; ``LockNotConfigured`` if none."""
    if default is not None and not isinstance(default, LeaseStore):
        return default
    if pool is not None:
        table = default.table if isinstance(default, LeaseStore) else "leases"
        return LeaseStore(pool, table=table)
    if default is None:
        raise LockNotConfigured(what)
    return default


def node_label() -> str:
    """A readable default holder label: ``host:pid``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def unique_holder(label: str) -> str:
    """``label#token``: unique per contender, still readable in the ``leases`` table."""
    return f"{label}#{uuid.uuid4().hex[:12]}"


def holder_label(holder: str) -> str:
    """The readable part of a holder id made by ``unique_holder``."""
    return holder.rsplit("#", 1)[0]


def default_margin(ttl: float) -> float:
    """How long before its local deadline a holder stops believing it holds a lease.

    A tenth of the ttl: covers clock-rate drift and the time between a "you
    hold it" answer and the action taken on it.
    """
    return ttl / 10
