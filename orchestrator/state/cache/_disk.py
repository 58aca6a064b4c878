"""L3: local disk, shared by the processes of one host (``diskcache``, SQLite + files).

diskcache gives what this level needs and is well kept: a size bound in bytes with
least-recently-used eviction, per-entry expiry, safe use from several processes, and
transactions (our set-if-newer is one). We store bytes only; a ``Disk`` that refuses
pickled values means a file planted in the cache directory cannot run code when read.
Its calls are blocking SQLite calls, so they run in a worker thread.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import diskcache

from orchestrator.state.cache._entry import Cached, decode_entry
from orchestrator.state.cache._kinds import Kind
from orchestrator.state.cache._levels import Accept, ByteLevel

log = logging.getLogger(__name__)


class BytesOnlyDisk(diskcache.Disk):  # type: ignore[misc]
    """diskcache's ``Disk`` for ``str`` keys and ``bytes`` values only (no pickle)."""

    def store(self, value: Any, read: bool, key: Any = diskcache.UNKNOWN) -> Any:
        if not isinstance(value, bytes):
            raise TypeError("the state cache stores bytes only")
        return super().store(value, read, key=key)

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        if mode == diskcache.core.MODE_PICKLE:
            raise ValueError("a pickled value in the state cache directory was refused")
        return super().fetch(mode, filename, value, read)


@dataclass(slots=True, kw_only=True)
class DiskLevel(ByteLevel):
    """L3 in ``directory``: at most ``size`` bytes, entries expire after ``ttl`` seconds."""

    directory: Path
    type: str = "disk"
    _cache: Any = None

    def __post_init__(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        self._cache = diskcache.Cache(
            str(self.directory),
            size_limit=self.size,
            eviction_policy="least-recently-used",
            disk=BytesOnlyDisk,
        )

    async def get(self, kind: Kind[Any], key: str, accept: Accept) -> Cached[Any] | None:
        name = self._key(kind.name, key)
        try:
            data = await asyncio.to_thread(self._cache.get, name)
        except ValueError as exc:  # a pickled value planted in the directory
            log.warning("cache %s: entry %s refused (%s)", self.name, name, exc)
            return None
        return None if data is None else self._read(kind, key, data, accept)

    def _put(self, name: str, version: int, data: bytes) -> bool:
        with self._cache.transact():
            current = self._cache.get(name)
            if current is not None:
                try:
                    if decode_entry(current)[0].version > version:
                        return False
                except ValueError:
                    pass  # damaged: replaced
            return bool(self._cache.set(name, data, expire=self.ttl))

    async def put(self, kind: Kind[Any], key: str, entry: Cached[Any]) -> None:
        data = self._encoded(entry, kind)
        if data is None:
            return
        if await asyncio.to_thread(self._put, self._key(kind.name, key), entry.version, data):
            self.stats.writes += 1

    def _delete(self, names: list[str]) -> int:
        return sum(1 for name in names if self._cache.delete(name))

    async def _remove(self, names: list[str]) -> int:
        return await asyncio.to_thread(self._delete, names)

    async def clear(self) -> None:
        await asyncio.to_thread(self._cache.clear)

    async def close(self) -> None:
        await asyncio.to_thread(self._cache.close)
