"""``MemoryLeaseStore``: leases with fencing epochs in this process (the memory backend).

The same rules as ``LeaseStore`` on PostgreSQL, statement for statement: a lease is free
when nobody holds it or its time is up; every acquisition is a new tenure with epoch + 1
(at least ``min_epoch``), even by the same holder; renewal keeps the epoch and fails
(``LeaseLost``) once the lease expired, was released or was taken; release keeps the
epoch. ``clock`` (seconds, monotonic by default) decides expiry, as the database's
``now()`` does there, so a test may move time forward.

With one process there is no one to take over from a dead holder at once (the
``presence`` fast path of PostgreSQL); a lease ends by release or by its ttl.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from orchestrator.commands.errors import LeaseLost
from orchestrator.commands.leases import Lease, check_ttl


@dataclass(slots=True)
class _Row:
    holder: str | None
    epoch: int
    acquired_at: float
    expires_at: float
    ttl: float


class MemoryLeaseStore:
    """Acquire, renew and release leases held in a dict (see the module docstring)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._rows: dict[str, _Row] = {}
        # Map the clock to wall time once, so leases show datetimes like the table's.
        self._wall = datetime.now(UTC) - timedelta(seconds=clock())

    def _at(self, seconds: float) -> datetime:
        return self._wall + timedelta(seconds=seconds)

    def _lease(self, name: str, row: _Row) -> Lease:
        assert row.holder is not None
        return Lease(
            name=name,
            holder=row.holder,
            epoch=row.epoch,
            expires_at=self._at(row.expires_at),
            acquired_at=self._at(row.acquired_at),
            ttl=row.ttl,
        )

    def _live(self, row: _Row | None) -> bool:
        return row is not None and row.holder is not None and row.expires_at > self._clock()

    async def acquire(
        self, name: str, holder: str, ttl: float, *, min_epoch: int = 0
    ) -> Lease | None:
        """Take the lease if free, expired or ``holder``'s (a new tenure); else ``None``."""
        ttl = check_ttl(ttl)
        row = self._rows.get(name)
        if row is not None and self._live(row) and row.holder != holder:
            return None
        now = self._clock()
        epoch = max(1, min_epoch) if row is None else max(row.epoch + 1, min_epoch)
        row = self._rows[name] = _Row(holder, epoch, now, now + ttl, ttl)
        return self._lease(name, row)

    async def renew(self, lease: Lease, ttl: float | None = None) -> Lease:
        """Extend this tenure by ``ttl`` (default its last); ``LeaseLost`` if not ours."""
        new_ttl = check_ttl(lease.ttl if ttl is None else ttl)
        row = self._rows.get(lease.name)
        if (
            row is None
            or row.holder != lease.holder
            or row.epoch != lease.epoch
            or row.expires_at <= self._clock()
        ):
            raise LeaseLost(
                lease.name,
                lease.holder,
                lease.epoch,
                current_holder=None if row is None else row.holder,
                current_epoch=None if row is None else row.epoch,
                expires_at=None if row is None else self._at(row.expires_at),
            )
        row.expires_at, row.ttl = self._clock() + new_ttl, new_ttl
        return self._lease(lease.name, row)

    async def release(self, lease: Lease) -> bool:
        """Give this tenure up; whether it was still ours (an expired one nobody took is)."""
        row = self._rows.get(lease.name)
        if row is None or row.holder != lease.holder or row.epoch != lease.epoch:
            return False
        row.holder, row.expires_at = None, self._clock()
        return True

    async def current(self, name: str) -> Lease | None:
        """The live tenure of ``name``, if any."""
        row = self._rows.get(name)
        return self._lease(name, row) if row is not None and self._live(row) else None

    async def held(self, prefix: str = "") -> list[Lease]:
        """Every live lease whose name starts with ``prefix``, ordered by name."""
        return [
            self._lease(name, row)
            for name, row in sorted(self._rows.items())
            if name.startswith(prefix) and self._live(row)
        ]
