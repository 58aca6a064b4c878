"""From the ``caching`` block (as plain values) to a running ``StateCache``.

Levels are taken in the order of their names (``l1``, ``l2``, ``l3``): the first is
asked first. ``memory`` is this process's L1, ``redis`` the shared L2 at ``redis_url``,
``disk`` the host's L3 under ``directory``. Keys carry ``prefix`` (derived from the
database and projection), so two stacks never read each other's entries.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.events import OrchestratorStateError
from orchestrator.state.cache._levels import Level, MemoryLevel
from orchestrator.state.cache._source import ReadModelSource
from orchestrator.state.cache.cache import CachePolicy, StateCache
from orchestrator.state.readmodel import PostgresReadModel


class CacheConfigError(OrchestratorStateError, ValueError):
    """A cache level cannot be built as configured (names the level and the fix)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class LevelSpec:
    """One ``caching.levels.<name>`` entry: ``size`` in bytes, ``ttl`` in seconds."""

    name: str
    type: str
    size: int
    ttl: float


@dataclass(frozen=True, slots=True, kw_only=True)
class CacheConfig:
    """The whole ``caching`` block, plus where L2 and L3 live."""

    levels: tuple[LevelSpec, ...] = ()
    policy: CachePolicy = field(default_factory=CachePolicy)
    redis_url: str | None = None
    directory: Path | None = None
    namespace: str = ""
    """What keys are scoped to (the database and projection): see :func:`key_prefix`."""

    @property
    def enabled(self) -> bool:
        return bool(self.levels)


def key_prefix(namespace: str) -> str:
    """``orchestrator:cache:<12 hex>:``: a digest, so no address or secret is stored."""
    digest = hashlib.sha256(namespace.encode()).hexdigest()[:12]
    return f"orchestrator:cache:{digest}:"


def scope_of(dsn: str, projection: str) -> str:
    """The database a DSN names (password dropped) and the projection."""
    return re.sub(r"://([^:@/]*):[^@]*@", r"://\1@", dsn) + "#" + projection


def build_levels(config: CacheConfig) -> list[Level]:
    """The configured levels, L1 first; ``CacheConfigError`` names what is missing."""
    prefix = key_prefix(config.namespace)
    levels: list[Level] = []
    for spec in sorted(config.levels, key=lambda s: s.name):
        if spec.type == "memory":
            levels.append(MemoryLevel(name=spec.name, size=spec.size, ttl=spec.ttl))
        elif spec.type == "redis":
            if not config.redis_url:
                raise CacheConfigError(
                    f"caching.levels.{spec.name} is a redis level: set REDIS_URL "
                    "(e.g. redis://127.0.0.1:6379/0)"
                )
            from orchestrator.state.cache._redis import RedisLevel

            levels.append(
                RedisLevel.from_url(
                    spec.name, config.redis_url, size=spec.size, ttl=spec.ttl, prefix=prefix
                )
            )
        elif spec.type == "disk":
            if config.directory is None:
                raise CacheConfigError(
                    f"caching.levels.{spec.name} is a disk level: set ORCHESTRATOR_CACHE_DIR"
                )
            from orchestrator.state.cache._disk import DiskLevel

            directory = config.directory / prefix.split(":")[2]
            levels.append(
                DiskLevel(
                    name=spec.name, directory=directory, size=spec.size, ttl=spec.ttl, prefix=""
                )
            )
        else:
            raise CacheConfigError(f"caching.levels.{spec.name}: unknown type {spec.type!r}")
    return levels


def open_cache(config: CacheConfig, read_model: PostgresReadModel, timeout: float) -> StateCache:
    """A cache over ``read_model`` with the configured levels (none: reads go straight
    to the read model, with the same sync rules)."""
    levels = build_levels(config) if config.enabled else []
    source = ReadModelSource(read_model, timeout, encode_sizes=bool(levels))
    return StateCache(levels, source, config.policy)
