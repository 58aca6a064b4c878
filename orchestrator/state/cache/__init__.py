"""The multi-level state cache (``caching:``): L1 memory, L2 Redis, L3 disk.

Reads of latest state (``StateManager``) go through :class:`StateCache`; what a read
must reflect is decided by ``orchestrator.state.sync``. See ``cache.py`` for the rules.
"""

from orchestrator.state.cache._build import (
    CacheConfig,
    CacheConfigError,
    LevelSpec,
    build_levels,
    key_prefix,
    open_cache,
    scope_of,
)
from orchestrator.state.cache._entry import Cached
from orchestrator.state.cache._kinds import EXECUTION, NAMESPACE, Kind
from orchestrator.state.cache._levels import Level, LevelStats, MemoryLevel
from orchestrator.state.cache._listener import InvalidationListener
from orchestrator.state.cache._source import ReadModelSource
from orchestrator.state.cache.cache import CachePolicy, Source, StateCache

__all__ = [
    "EXECUTION",
    "NAMESPACE",
    "CacheConfig",
    "CacheConfigError",
    "CachePolicy",
    "Cached",
    "InvalidationListener",
    "Kind",
    "Level",
    "LevelSpec",
    "LevelStats",
    "MemoryLevel",
    "ReadModelSource",
    "Source",
    "StateCache",
    "build_levels",
    "key_prefix",
    "open_cache",
    "scope_of",
]
