"""The ``StateManager``'s reads of execution and task state, served from Redis.

With ``state_management.backend: "redis"`` the execution and task state users read
comes from the Redis read model (``projections.redisstore``), kept by its own
processor; strong and causal reads wait on the offsets that processor stores in
Redis, so read-your-writes holds for Redis reads as it does for PostgreSQL ones. An
execution Redis no longer holds (its ``ttl`` ran out) is read from ``fallback`` (the
PostgreSQL read model): the TTL bounds Redis's memory, not what users can read.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from orchestrator.commands import ReadModelTimeout
from orchestrator.events import ExecutionState, Position
from orchestrator.state.readmodel import PostgresReadModel

if TYPE_CHECKING:  # redis-py loads with the store (a Redis-backed process only)
    from orchestrator.projections import RedisReadModelStore

_POLL_S = (0.002, 0.05)


def is_redis_outage(exc: BaseException) -> bool:
    """``projections.is_redis_outage``, imported when first needed (it loads redis-py)."""
    from orchestrator.projections import is_redis_outage as outage

    return outage(exc)


class RedisReadModel:
    """Reads of one Redis read model (an execution's state; waiting for a position)."""

    def __init__(
        self, store: RedisReadModelStore, fallback: PostgresReadModel | None = None
    ) -> None:
        self.store = store
        self.fallback = fallback
        #: Reads Redis answered, and reads it missed (served by ``fallback``, if any).
        self.hits = 0
        self.misses = 0

    async def load_execution(self, execution_id: str) -> ExecutionState | None:
        """The execution's state from Redis; on a miss (never seen, or expired) or while
        Redis is unreachable, from ``fallback``; ``None`` if neither holds it."""
        try:
            found = await self.store.load(execution_id)
        except Exception as exc:  # Redis away: the same state is in PostgreSQL
            if self.fallback is None or not is_redis_outage(exc):
                raise
            found = None
        if found is not None:
            self.hits += 1
            return found.entry.state
        self.misses += 1
        return None if self.fallback is None else await self.fallback.load_execution(execution_id)

    async def wait_for(self, position: Position, timeout: float) -> None:  # noqa: ASYNC109
        """Return once the Redis processor has applied ``position``; ReadModelTimeout else."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        delay = _POLL_S[0]
        tp = (position.topic, position.partition)
        while True:
            try:
                done = (await self.store.offsets([tp]))[tp]
            except Exception as exc:  # Redis away: keep waiting until the deadline
                if not is_redis_outage(exc):
                    raise
                done = -1
            if done > position.offset:
                return
            if loop.time() >= deadline:
                raise ReadModelTimeout(position, timeout, applied=done - 1)
            await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))
            delay = min(delay * 2, _POLL_S[1])
