"""``caching`` and ``distributed.synchronization`` as the runtime's cache and sync policy.

``caching.levels``: each named level (``l1``, ``l2``, ``l3``; asked in name order) of
type ``memory`` (this process), ``redis`` (at ``REDIS_URL``) or ``disk`` (under
``ORCHESTRATOR_CACHE_DIR``, else the data directory's ``cache``, else
``$XDG_CACHE_HOME/orchestrator-state/state-cache``); ``size`` in bytes, ``ttl`` in
seconds. ``strategies`` and ``invalidation`` become the cache's policy.
``synchronization.replication.sync_interval`` (milliseconds) bounds how old a cached
value an ``eventual`` read may get.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from orchestrator.config import Settings, parse_size
from orchestrator.state import CacheConfig, CachePolicy, LevelSpec, SyncPolicy, scope_of

REDIS_URL_ENV = "REDIS_URL"
CACHE_DIR_ENV = "ORCHESTRATOR_CACHE_DIR"


def cache_dir(environ: Mapping[str, str], data_dir: Path | None) -> Path:
    """Where a ``disk`` level keeps its files."""
    if environ.get(CACHE_DIR_ENV):
        return Path(environ[CACHE_DIR_ENV])
    if data_dir is not None:
        return data_dir / "cache"
    base = environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "orchestrator-state" / "state-cache"


def cache_config_from(
    settings: Settings,
    *,
    environ: Mapping[str, str],
    data_dir: Path | None,
    dsn: str,
    projection: str,
) -> CacheConfig:
    """The runtime's ``CacheConfig`` (no levels: no cache)."""
    c = settings.caching
    levels = tuple(
        LevelSpec(name=name, type=level.type, size=parse_size(level.size), ttl=float(level.ttl))
        for name, level in c.levels.items()
    )
    policy = CachePolicy(
        read_through=c.strategies.read_through,
        write_through=c.strategies.write_through,
        cache_aside=c.strategies.cache_aside,
        on_write=c.invalidation.on_write,
        broadcast=c.invalidation.broadcast,
    )
    disk = any(level.type == "disk" for level in levels)
    return CacheConfig(
        levels=levels,
        policy=policy,
        redis_url=environ.get(REDIS_URL_ENV) or None,
        directory=cache_dir(environ, data_dir) if disk else None,
        namespace=scope_of(dsn, projection),
    )


def sync_policy_from(settings: Settings, read_timeout: float = 30.0) -> SyncPolicy:
    """The runtime's ``SyncPolicy`` from ``distributed.synchronization``."""
    sync = settings.distributed.synchronization
    interval = sync.replication.sync_interval
    return SyncPolicy(
        strategy=sync.strategy,
        sync_interval=None if interval is None else interval / 1000,
        conflict_resolution=sync.conflict_resolution,
        read_timeout=read_timeout,
    )
