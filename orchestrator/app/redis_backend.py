"""``state_management.backend: "redis"``: execution and task state served from Redis.

Kafka stays the source of truth and PostgreSQL keeps leases, locks and the write
side's read model; Redis holds the read model users read (``StateManager``'s
execution and task state), kept by its own processor (``projections.redisprojector``)
with the seed's ``key_prefix`` and ``ttl``. An execution whose hash expired is
read from the PostgreSQL read model, and reloaded from it into Redis when its next
event arrives.

The server address: ``config.url`` when the file sets it, else ``REDIS_CLUSTER_URL``
(with ``cluster_mode``) or ``REDIS_URL`` from the environment, else the default.
``persistence`` is a server setting (``appendonly``, ``save``): the devstack applies it
to the servers it starts; a server run elsewhere keeps its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import asyncpg

from orchestrator.config import RedisBackend, redact_text
from orchestrator.devstack import ServiceEndpoints
from orchestrator.events import PLAINTEXT, KafkaSecurity, ServerUnreachable
from orchestrator.projections import ProjectionSettings
from orchestrator.state import PostgresReadModel, RedisReadModel

if TYPE_CHECKING:  # redis-py loads in the functions below: a Redis-backed process only
    from orchestrator.projections import RedisClient, RedisProjector, RedisReadModelStore

log = logging.getLogger(__name__)


def redis_url(backend: RedisBackend, endpoints: ServiceEndpoints) -> str:
    """Where the Redis read model lives (see the module docstring)."""
    if "url" in backend.model_fields_set:
        return backend.url
    env = endpoints.redis_cluster_url if backend.cluster_mode else endpoints.redis_url
    return env or endpoints.redis_url or backend.url


def redis_store(
    client: RedisClient, backend: RedisBackend, projection: ProjectionSettings
) -> RedisReadModelStore:
    """The store of ``projection``'s Redis read model with the seed's prefix and TTLs."""
    from orchestrator.projections import REDIS_GROUP_SUFFIX, RedisKeys, RedisReadModelStore

    return RedisReadModelStore(
        client,
        projection.name + REDIS_GROUP_SUFFIX,
        keys=RedisKeys(backend.key_prefix),
        ttl_active=backend.ttl.active_states,
        ttl_completed=backend.ttl.completed_states,
    )


@dataclass
class RedisReadSide:
    """The Redis client, the reader ``StateManager`` uses and (maybe) the processor."""

    client: RedisClient
    reader: RedisReadModel
    projector: RedisProjector | None = None
    task: asyncio.Task[None] | None = field(default=None, repr=False)

    async def stop(self) -> None:
        """Stop the processor (finishing its batch) and close the client."""
        if self.projector is not None:
            self.projector.request_stop()
        if self.task is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(self.task, 15)
        if self.projector is not None:
            await self.projector.stop()
        await self.client.aclose()

    async def wait(self) -> None:
        """Raise the processor's error if it stopped (for ``App.wait``)."""
        if self.task is not None and self.task.done():
            self.task.result()
            raise RuntimeError("redis read-model processor stopped")


async def start_redis_read_side(
    backend: RedisBackend,
    endpoints: ServiceEndpoints,
    *,
    projection: ProjectionSettings,
    pool: asyncpg.Pool,
    bootstrap: str,
    run_projector: bool,
    fallback: PostgresReadModel | None = None,
    security: KafkaSecurity = PLAINTEXT,
    connect_timeout: float = 10.0,
) -> RedisReadSide:
    """Connect to Redis (``ServerUnreachable`` if it does not answer), and run the Redis
    read model's processor in this process when ``run_projector``; reads Redis misses
    (expired executions) go to ``fallback``."""
    from orchestrator.projections import (
        RedisProjector,
        is_redis_outage,
        postgres_fallback,
        redis_client,
    )

    url = redis_url(backend, endpoints)
    client = redis_client(url, cluster_mode=backend.cluster_mode)
    try:
        await asyncio.wait_for(client.ping(), connect_timeout)
    except Exception as exc:
        await client.aclose()
        if isinstance(exc, TimeoutError) or is_redis_outage(exc):
            reason = redact_text(str(exc)) or "no answer"
            raise ServerUnreachable("Redis", redact_text(url), reason) from exc
        raise
    store = redis_store(client, backend, projection)
    side = RedisReadSide(client, RedisReadModel(store, fallback))
    if run_projector:
        side.projector = RedisProjector(
            projection,
            store,
            bootstrap,
            security=security,
            fallback=postgres_fallback(pool, projection),
        )
        try:
            await side.projector.start()
        except BaseException:
            await side.stop()
            raise
        side.task = asyncio.ensure_future(side.projector.run())
    log.info("redis read model at %s (cluster_mode=%s)", redact_text(url), backend.cluster_mode)
    return side
