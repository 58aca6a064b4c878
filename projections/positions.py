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
from collections.abc import AsyncIterator
from typing import Any

import asyncpg

from orchestrator.events import Position
from orchestrator.projections.offsets import applied_offset
from orchestrator.projections.store import OFFSETS_CHANNEL

_POLL_S = 0.25
__all__ = ["applied_offset", "wait_for_position"]


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
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    woken = asyncio.Event()

    def on_notify(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
        if payload == projection:
            woken.set()

    async with _connection(db) as conn:
        await conn.add_listener(OFFSETS_CHANNEL, on_notify)
        try:
            while True:
                woken.clear()
                done = await applied_offset(conn, projection, position.topic, position.partition)
                if done > position.offset:
                    return True
                remaining = deadline - loop.time()
                if remaining <= 0:
                    return False
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), min(remaining, _POLL_S))
        finally:
            await conn.remove_listener(OFFSETS_CHANNEL, on_notify)
