"""Closing a PostgreSQL pool within a deadline.

``asyncpg.Pool.close()`` waits, without limit, for every connection to come back; a
task stuck on one (a cancelled query the server never answered, a connection a failed
caller never released) would hang shutdown for ever. :func:`close_pool` gives it
``deadline_s`` and then terminates the connections that are left.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

CLOSE_DEADLINE_S = 10.0

log = logging.getLogger(__name__)


async def close_pool(pool: asyncpg.Pool, deadline_s: float = CLOSE_DEADLINE_S) -> None:
    """Close ``pool`` gracefully; terminate what is left after ``deadline_s``."""
    try:
        await asyncio.wait_for(pool.close(), deadline_s)
    except TimeoutError:
        log.warning(
            "PostgreSQL pool: a connection was not released within %.0f s; terminated",
            deadline_s,
        )
        pool.terminate()
