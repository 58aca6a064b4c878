"""Read-your-writes: wait until a projection has applied a given log position.

``append`` returns a :class:`~events.envelope.Position`; a reader that must see its
own write passes it here (design §3, "strong" reads). The processor commits
``next_offset`` with the rows, so ``next_offset > position.offset`` means the event
and everything before it on that partition is readable. Wake-ups come from the
processor's NOTIFY on ``orchestrator_projection_offsets``; a short poll covers a
missed notification (e.g. a connection that was busy when it was sent).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg

from orchestrator.events import Position
from orchestrator.projections.offsets import applied_offset
from orchestrator.projections.store import OFFSETS_CHANNEL

_POLL_S = 0.25
__all__ = ["applied_offset", "until_applied", "wait_for_position"]


@contextlib.asynccontextmanager
async def _connection(db: asyncpg.Connection | asyncpg.Pool) -> AsyncIterator[asyncpg.Connection]:
    if isinstance(db, asyncpg.Pool):
        async with db.acquire() as conn:
            yield conn
    else:
        yield db


async def wait_for_position(
    db: asyncpg.Connection | asyncpg.Pool,
    projection: str,
    position: Position,
    timeout: float,  # noqa: ASYNC109  (the API the query side and write side call)
) -> bool:
    """True once ``projection`` has applied ``position`` (``next_offset > offset``);
    False if it has not within ``timeout`` seconds.

    ``db`` is a pool (a connection is borrowed) or a connection that is not inside a
    transaction (it LISTENs while waiting and UNLISTENs after).
    """
    deadline = time.monotonic() + timeout
    woken = asyncio.Event()

    def on_notify(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload == projection:
            woken.set()

    async with _connection(db) as conn:

        async def applied() -> int:
            woken.clear()
            return await applied_offset(conn, projection, position.topic, position.partition)

        async def notified(remaining: float) -> None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(woken.wait(), min(remaining, _POLL_S))

        await conn.add_listener(OFFSETS_CHANNEL, on_notify)
        try:
            return await until_applied(position, applied, notified, deadline)
        finally:
            await conn.remove_listener(OFFSETS_CHANNEL, on_notify)


async def until_applied(
    position: Position,
    applied: Callable[[], Awaitable[int]],
    wait: Callable[[float], Awaitable[None]],
    deadline: float,
) -> bool:
    """The one check of every read-your-writes wait: True once ``applied()`` (the
    projection's next offset on the position's partition) is past ``position``; False
    at ``deadline`` (``time.monotonic()``). Between checks ``wait(remaining)`` sleeps
    until a notification or a poll interval."""
    while True:
        if await applied() > position.offset:
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        await wait(remaining)
