"""``DistributedLock``: mutual exclusion across processes, on a lease with a fencing token.

Used as the seed shows::

    async with DistributedLock(name=f"resource_{rid}", ttl=300, retry_interval=1.0) as lock:
        await process_resource(rid, fencing_token=lock.fencing_token)

Why it works this way:

* The lock is a lease named ``lock/<name>`` in the ``leases`` table; the
  database's clock decides expiry, so a holder that dies (even by SIGKILL)
  frees the lock ``ttl`` seconds after its last renewal, and nobody else needs
  to trust the dead machine's clock.
* While held, a background task renews the lease every ``ttl / 3``. A lease
  can still be lost (a pause longer than the ttl, a partition from the
  database). The holder is never left to guess: ``lost`` is set and
  ``check()`` raises ``LeaseLost`` as soon as the lease is lost or its local
  deadline (measured from *before* the last successful renew request, minus a
  safety margin) has passed, and leaving the block raises ``LeaseLost``
  instead of returning normally.
* A lock can only ever order actors that cooperate. For a resource that can
  check it, pass ``fencing_token`` (the lease epoch, strictly increasing per
  lock) along with each write and refuse writes with an older token.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Self

import asyncpg

from orchestrator.commands.errors import LeaseLost, LockTimeout
from orchestrator.commands.leases import (
    TRANSIENT_ERRORS,
    CoordinationStore,
    DefaultStore,
    Lease,
    check_ttl,
    default_margin,
    holder_label,
    node_label,
    store_for,
    unique_holder,
)

log = logging.getLogger(__name__)

LOCK_PREFIX = "lock/"
"""Lease-name prefix of locks, so locks, leader elections and executions share a table."""


@dataclass(frozen=True, slots=True)
class LockInfo:
    """A held lock as the seed's shared-state ``locks`` section shows it."""

    resource: str
    holder: str
    acquired_at: datetime
    ttl: float
    epoch: int
    expires_at: datetime

    def to_dict(self) -> dict[str, object]:
        """The seed's shape: ``{resource, holder, acquired_at (ISO 8601, Z), ttl}``."""
        at = self.acquired_at.astimezone(UTC).isoformat().replace("+00:00", "Z")
        ttl: float | int = int(self.ttl) if float(self.ttl).is_integer() else self.ttl
        return {"resource": self.resource, "holder": self.holder, "acquired_at": at, "ttl": ttl}


async def list_locks(
    pool: asyncpg.Pool | None = None,
    prefix: str | None = None,
    *,
    store: CoordinationStore | None = None,
) -> list[LockInfo]:
    """Locks held now (database clock), ordered by resource; ``prefix`` filters resources."""
    store = store or store_for(pool, "list_locks")
    leases = await store.held(LOCK_PREFIX + (prefix or ""))
    return [
        LockInfo(
            resource=lease.name.removeprefix(LOCK_PREFIX),
            holder=holder_label(lease.holder),
            acquired_at=lease.acquired_at,
            ttl=lease.ttl,
            epoch=lease.epoch,
            expires_at=lease.expires_at,
        )
        for lease in leases
    ]


class DistributedLock:
    """An async context manager holding the lease ``lock/<name>`` while inside.

    ``holder`` is a readable label shown in ``list_locks`` (default
    ``host:pid``); each lock object adds a unique token to it, so two objects
    never both hold the lock, even with the same label. ``timeout`` bounds the
    wait in ``__aenter__`` (``LockTimeout``); ``None`` waits forever, retrying
    every ``retry_interval``. ``store`` is a lease store to use instead of ``pool`` (the
    memory backend's). Without either, ``default_store()`` gives it (the seed's
    ``orchestrator.state.DistributedLock``: the leases of the process's runtime).
    One object may be used for several ``async with`` blocks in turn, not
    concurrently.
    """

    def __init__(
        self,
        name: str,
        ttl: float,
        retry_interval: float = 1.0,
        *,
        pool: asyncpg.Pool | None = None,
        store: CoordinationStore | None = None,
        default_store: DefaultStore | None = None,
        holder: str | None = None,
        timeout: float | None = None,
        safety_margin: float | None = None,
    ) -> None:
        self.ttl = check_ttl(ttl)
        self.name = name
        self.retry_interval = retry_interval
        self.timeout = timeout
        self.holder = holder if holder is not None else node_label()
        self.holder_id = unique_holder(self.holder)
        self.safety_margin = default_margin(ttl) if safety_margin is None else safety_margin
        self.lost = asyncio.Event()
        """Set as soon as the lease is known lost, or its local deadline has passed."""
        self._pool = pool
        self._store: CoordinationStore | None = store
        self._default_store = default_store
        self._lease: Lease | None = None
        self._deadline = 0.0  # loop time after which we no longer claim to hold the lock
        self._error: LeaseLost | None = None
        self._renewer: asyncio.Task[None] | None = None

    @property
    def lease_name(self) -> str:
        """The row name in the ``leases`` table."""
        return LOCK_PREFIX + self.name

    @property
    def lease(self) -> Lease | None:
        """The lease as last granted or renewed, if this object has taken it."""
        return self._lease

    @property
    def fencing_token(self) -> int:
        """The lease epoch: strictly greater than any previous holder's. Only while held."""
        if self._lease is None:
            raise RuntimeError(f"lock {self.name!r} is not held")
        return self._lease.epoch

    @property
    def held(self) -> bool:
        """Whether this object holds the lock and may still act on it (no I/O)."""
        return self._lease is not None and not self._lost_now()

    def check(self) -> None:
        """Raise ``LeaseLost`` if the lock was lost; call before acting on the resource."""
        if self._lease is None:
            raise RuntimeError(f"lock {self.name!r} is not held")
        if self._lost_now():
            raise self._loss()

    async def acquire(self, timeout: float | None = None) -> Lease:  # noqa: ASYNC109
        """Take the lock, retrying every ``retry_interval``; start renewing it."""
        if self._lease is not None:
            raise RuntimeError(f"lock {self.name!r} is already held by this object")
        store = self._store = self._store or store_for(
            self._pool,
            f"DistributedLock({self.name!r})",
            None if self._default_store is None else self._default_store(),
        )
        wait = self.timeout if timeout is None else timeout
        loop = asyncio.get_running_loop()
        give_up = None if wait is None else loop.time() + wait
        while True:
            # The server grants the lease at its now(), after `started`: a local
            # deadline counted from `started` ends before the lease does.
            started = loop.time()
            lease = await store.acquire(self.lease_name, self.holder_id, self.ttl)
            if lease is not None:
                break
            pause = self.retry_interval
            if give_up is not None:
                if loop.time() >= give_up:
                    raise LockTimeout(self.name, self.holder_id, float(wait or 0.0))
                pause = min(pause, give_up - loop.time())
            await asyncio.sleep(pause)
        self._lease = lease
        self._deadline = started + self.ttl - self.safety_margin
        self._error = None
        self.lost.clear()
        self._renewer = asyncio.create_task(self._keep_alive(), name=f"renew {self.lease_name}")
        log.debug("lock %s taken by %s (epoch %s)", self.name, self.holder_id, lease.epoch)
        return lease

    async def release(self) -> None:
        """Stop renewing and free the lock; ``LeaseLost`` if it was lost while held."""
        lease, store = self._lease, self._store
        if lease is None or store is None:
            raise RuntimeError(f"lock {self.name!r} is not held")
        await self._stop_renewer()
        try:
            still_ours = await store.release(lease)
        finally:
            self._lease = None
        # Still our epoch at release means nobody took the lock in between, even if
        # it expired: exclusion held. Otherwise someone did, and the caller must know.
        if not still_ours:
            self._mark_lost(LeaseLost(self.lease_name, self.holder_id, lease.epoch))
            raise self._loss()

    async def __aenter__(self) -> Self:
        await self.acquire()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            await self.release()
            return
        # The block failed: its error is the one to raise; report release trouble on it.
        try:
            await self.release()
        except LeaseLost as lost:
            exc.add_note(f"while holding lock {self.name!r}: {lost}")
        except Exception as error:
            log.warning("lock %s: release after a failed block failed: %r", self.name, error)
            exc.add_note(f"lock {self.name!r} was not released ({error!r}); it expires by ttl")

    # --- internals ------------------------------------------------------------------

    def _lost_now(self) -> bool:
        if self.lost.is_set():
            return True
        if asyncio.get_running_loop().time() >= self._deadline:
            self._mark_lost(None)
            return True
        return False

    def _loss(self) -> LeaseLost:
        if self._error is not None:
            return self._error
        lease = self._lease
        return LeaseLost(self.lease_name, self.holder_id, lease.epoch if lease else -1)

    def _mark_lost(self, error: LeaseLost | None) -> None:
        if self._error is None:
            self._error = error if error is not None else self._loss()
        if not self.lost.is_set():
            log.warning("lock %s lost by %s: %s", self.name, self.holder_id, self._error)
            self.lost.set()

    def _mark_lost_because(self, error: Exception) -> None:
        loss = self._loss()
        loss.__cause__ = error
        self._mark_lost(loss)

    async def _stop_renewer(self) -> None:
        task, self._renewer = self._renewer, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def _keep_alive(self) -> None:
        """Renew every ttl/3; on failure retry until the local deadline, then mark lost."""
        assert self._store is not None
        loop = asyncio.get_running_loop()
        interval = self.ttl / 3
        pause = interval
        while True:
            await asyncio.sleep(min(pause, max(0.0, self._deadline - loop.time())))
            lease = self._lease
            if lease is None:
                return
            started = loop.time()
            if started >= self._deadline:
                self._mark_lost(None)
                return
            try:
                async with asyncio.timeout_at(self._deadline):
                    renewed = await self._store.renew(lease, self.ttl)
            except LeaseLost as error:
                self._mark_lost(error)
                return
            except TRANSIENT_ERRORS as error:  # retried until the local deadline
                log.warning("lock %s: renew failed, retrying: %r", self.name, error)
                if loop.time() >= self._deadline:
                    self._mark_lost_because(error)
                    return
                pause = min(interval, self.retry_interval)
                continue
            except Exception as error:
                log.exception("lock %s: renew failed unexpectedly; lock given up", self.name)
                self._mark_lost_because(error)
                return
            self._lease = renewed
            self._deadline = started + self.ttl - self.safety_margin
            pause = interval
