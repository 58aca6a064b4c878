"""Broadcast invalidation: the processor's NOTIFYs of what it applied, in every process.

The projection processor NOTIFYs, in the transaction that commits a batch, the
execution ids and shared-state namespaces the batch changed (``projections.store``).
Each process LISTENs on its own connection and drops those keys from every level, so
invalidation follows what the log applied, never what a writer merely sent. When the
connection is lost, notifications may have been missed: every entry fetched before the
reconnect is refused from then on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import asyncpg

from orchestrator.events import Position
from orchestrator.projections import (
    SHARED_CHANGES_CHANNEL,
    STATE_CHANGES_CHANNEL,
    parse_changes,
)
from orchestrator.state.cache._kinds import EXECUTION, NAMESPACE
from orchestrator.state.cache.cache import StateCache

log = logging.getLogger(__name__)
_KINDS = {STATE_CHANGES_CHANNEL: EXECUTION.name, SHARED_CHANGES_CHANNEL: NAMESPACE.name}


class InvalidationListener:
    """LISTENs on ``dsn`` and feeds :meth:`StateCache.applied`, in notification order."""

    def __init__(self, cache: StateCache, dsn: str, *, connect_timeout: float = 10.0) -> None:
        self.cache = cache
        self.dsn = dsn
        self.connect_timeout = connect_timeout
        self.connected = asyncio.Event()
        self._queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._worker: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Connect (raising if PostgreSQL does not answer), then keep listening."""
        conn = await self._connect()
        self._worker = asyncio.ensure_future(self._apply_forever())
        self._task = asyncio.ensure_future(self._listen_forever(conn))

    async def stop(self) -> None:
        for task in (self._task, self._worker):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._task = self._worker = None

    async def _connect(self) -> asyncpg.Connection:
        conn = await asyncpg.connect(self.dsn, timeout=self.connect_timeout)
        for channel in _KINDS:
            await conn.add_listener(channel, self._on_notify)
        self.connected.set()
        return conn

    def _on_notify(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        self._queue.put_nowait((channel, payload))

    async def _listen_forever(self, conn: asyncpg.Connection) -> None:
        delay = 0.2
        while True:
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _c, ev=lost: ev.set())
            try:
                await lost.wait()
            finally:
                with contextlib.suppress(Exception):
                    await conn.close(timeout=1)
            self.connected.clear()
            log.warning("cache invalidation: lost its PostgreSQL connection; reconnecting")
            while True:
                try:
                    conn = await self._connect()
                    break
                except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
                    log.debug("cache invalidation: reconnect failed (%s)", exc)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, 5.0)
            delay = 0.2
            await self.cache.untrusted_before(time.time())
            log.warning("cache invalidation: listening again; older cache entries refused")

    async def _apply_forever(self) -> None:
        while True:
            channel, payload = await self._queue.get()
            try:
                kind = _KINDS[channel]
                changes = parse_changes(payload)
                at = {(kind, k): Position(*p) for k, p in changes.items() if p is not None}
                await self.cache.applied([(kind, k) for k in changes], at)
            except Exception as exc:  # one bad payload must not stop invalidation
                log.warning("cache invalidation: %s payload %r skipped (%s)", channel, payload, exc)
