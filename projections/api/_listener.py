"""One PostgreSQL ``LISTEN`` connection shared by every stream and waiter of an app.

After each commit the processor ``NOTIFY``s ``orchestrator_state_changes`` with a JSON
array of the execution ids it changed, and ``orchestrator_projection_offsets`` with its
own name. A payload is read as its keys: the strings of a JSON array, else the
payload itself. Subscribers hold an ``asyncio.Event`` rather
than a queue of notifications: a woken subscriber re-reads the current state, so a
burst of changes coalesces into one read and a slow client can never make a buffer
grow. A payload we cannot read, or a lost connection, wakes everyone: a spurious
re-read is cheap, a missed change is not.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import asyncpg

from orchestrator.events import Outage
from orchestrator.projections.store import parse_changes

log = logging.getLogger(__name__)

_RECONNECT_ERRORS = (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError)


Key = tuple[str, str | None]
"""``(channel, key)``; a ``None`` key hears every notification on the channel."""


class Subscription:
    """Wake-ups for one key of a channel (every notification of it when the key is ``None``)."""

    def __init__(self, listener: StateChangeListener, key: Key) -> None:
        self._listener = listener
        self.key = key
        self._event = asyncio.Event()
        self.closed = False

    def wake(self) -> None:
        """Mark that something changed since the last :meth:`wait`."""
        self._event.set()

    async def wait(self, seconds: float) -> bool:
        """Wait for a change; ``True`` if one came, ``False`` after ``seconds``."""
        try:
            async with asyncio.timeout(seconds):
                await self._event.wait()
        except TimeoutError:
            return False
        self._event.clear()
        return True

    def close(self) -> None:
        """Stop receiving wake-ups; a waiter is woken and sees ``closed``."""
        if not self.closed:
            self.closed = True
            self._listener._unsubscribe(self)
            self._event.set()

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class StateChangeListener:
    """``LISTEN``s on ``channels`` over one dedicated connection; reconnects when it drops."""

    def __init__(
        self, dsn: str, channels: tuple[str, ...], *, max_reconnect_delay: float = 5.0
    ) -> None:
        self._dsn = dsn
        self._channels = channels
        self._max_delay = max_reconnect_delay
        self.outage = Outage(
            f"query API: PostgreSQL (LISTEN on {', '.join(channels)})",
            log,
            max_delay=max_reconnect_delay,
        )
        self._conn: asyncpg.Connection | None = None
        self._subs: dict[Key, set[Subscription]] = {}
        self._reconnect_task: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    def connected(self) -> bool:
        """Whether the LISTEN connection is up (streams may miss nothing while it is)."""
        return self._conn is not None and not self._conn.is_closed()

    async def start(self) -> None:
        """Connect and ``LISTEN``; errors propagate so a bad DSN fails at startup."""
        self._stopping = False
        await self._connect()

    async def stop(self) -> None:
        """Close the connection and end every subscription."""
        self._stopping = True
        if self._reconnect_task is not None:
            self._reconnect_task.cancel()
            try:
                await self._reconnect_task
            except asyncio.CancelledError:
                pass
            self._reconnect_task = None
        conn, self._conn = self._conn, None
        if conn is not None and not conn.is_closed():
            await conn.close()
        for subs in list(self._subs.values()):
            for sub in list(subs):
                sub.close()

    async def __aenter__(self) -> StateChangeListener:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def subscribe(self, channel: str, key: str | None) -> Subscription:
        """Wake-ups when ``channel`` carries ``key`` (any notification on it if ``None``)."""
        if channel not in self._channels:
            raise ValueError(f"not listening on {channel!r} (only {self._channels})")
        sub = Subscription(self, (channel, key))
        if self._stopping:
            sub.closed = True
            return sub
        self._subs.setdefault(sub.key, set()).add(sub)
        return sub

    def _unsubscribe(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.key)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.key]

    def _wake(self, channel: str | None, keys: list[str] | None) -> None:
        """Wake the subscribers of ``keys`` on ``channel`` and its catch-alls; every
        subscriber of ``channel`` if ``keys`` is ``None``; everyone if both are."""
        if channel is None or keys is None:
            targets = [s for k, subs in self._subs.items() if channel in (None, k[0]) for s in subs]
        else:
            targets = [*self._subs.get((channel, None), ())]
            for key in keys:
                targets.extend(self._subs.get((channel, key), ()))
        for sub in targets:
            sub.wake()

    def _on_notify(self, _conn: Any, _pid: int, channel: str, payload: str) -> None:
        self._wake(channel, _keys(payload))

    def _on_terminate(self, _conn: Any) -> None:
        if self._stopping or self._reconnect_task is not None:
            return
        log.warning("LISTEN connection on %s lost; reconnecting", self._channels)
        self._conn = None
        self._reconnect_task = asyncio.get_running_loop().create_task(self._reconnect())
        self._reconnect_task.add_done_callback(self._reconnect_done)

    def _reconnect_done(self, task: asyncio.Task[None]) -> None:
        self._reconnect_task = None
        if not task.cancelled() and task.exception() is not None:
            log.error(
                "LISTEN on %s gave up: streams will only see their first state",
                self._channels,
                exc_info=task.exception(),
            )

    async def _connect(self) -> None:
        conn = await asyncpg.connect(self._dsn)
        try:
            for channel in self._channels:
                await conn.add_listener(channel, self._on_notify)
        except BaseException:
            await conn.close()
            raise
        conn.add_termination_listener(self._on_terminate)
        self._conn = conn

    async def _reconnect(self) -> None:
        while not self._stopping:
            try:
                await self._connect()
            except _RECONNECT_ERRORS as exc:  # bounded backoff, logged once per outage
                await asyncio.sleep(self.outage.failed(exc))
                continue
            self.outage.recovered()
            log.info("LISTEN on %s restored", self._channels)
            self._wake(None, None)  # changes made while we were away: everyone re-reads
            return


def _keys(payload: str) -> list[str] | None:
    """The keys a payload names; ``None`` (wake every subscriber) if it names none clearly."""
    if not payload:
        return None
    if not payload.startswith(("[", "{")):
        return [payload]
    try:
        return list(parse_changes(payload))
    except ValueError:
        pass
    log.debug("unreadable notification payload %.200r: waking every subscriber", payload)
    return None
