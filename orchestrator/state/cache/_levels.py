"""The cache levels' common shape and L1, the in-process level.

A level stores entries by ``(kind, key)``. L1 keeps decoded values (a hit costs a dict
lookup, no decoding), least recently used first out, bounded by the encoded size of
what it holds (``size`` in bytes) and by ``ttl`` seconds per entry. L2 (Redis) and L3
(disk) keep bytes (``_entry.encode_entry``) and are in their own modules.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from orchestrator.events import field_values
from orchestrator.state.cache._entry import Cached, Header, decode_entry, encode_entry, header_of
from orchestrator.state.cache._kinds import Kind

log = logging.getLogger(__name__)

Key = tuple[str, str]
"""``(kind name, key)``: an execution id or a namespace."""
Accept = Callable[[Header], bool]
"""Whether a read may use an entry with this header (its need, the newest seen...)."""


@dataclass(slots=True)
class LevelStats:
    """Counts of one level; ``hit_rate`` is hits / (hits + misses), 0 when unused."""

    hits: int = 0
    misses: int = 0
    stale: int = 0
    """Entries found but refused (too old for the read's need); counted as misses too."""
    writes: int = 0
    invalidations: int = 0

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0

    def as_dict(self) -> dict[str, float]:
        """Every count, then ``hit_rate``."""
        return {**field_values(self), "hit_rate": self.hit_rate}


class Level(Protocol):
    """One level of the cache (L1 memory, L2 Redis, L3 disk)."""

    name: str
    type: str
    stats: LevelStats

    async def get(self, kind: Kind[Any], key: str, accept: Accept) -> Cached[Any] | None:
        """The entry if present and accepted (a refused one counts in ``stats.stale``)."""

    async def put(self, kind: Kind[Any], key: str, entry: Cached[Any]) -> None:
        """Store ``entry`` unless the level holds a newer version of the key."""

    async def delete(self, keys: Iterable[Key]) -> None: ...

    async def clear(self) -> None: ...

    async def close(self) -> None: ...


@dataclass(slots=True)
class _Slot:
    entry: Cached[Any]
    expires: float


@dataclass(slots=True)
class MemoryLevel:
    """L1: this process's memory, LRU by bytes, entries expire after ``ttl`` seconds."""

    name: str
    size: int
    ttl: float
    type: str = "memory"
    stats: LevelStats = field(default_factory=LevelStats)
    _slots: OrderedDict[Key, _Slot] = field(default_factory=OrderedDict)
    _bytes: int = 0

    @property
    def bytes_used(self) -> int:
        return self._bytes

    def __len__(self) -> int:
        return len(self._slots)

    def peek(self, kind: Kind[Any], key: str) -> Cached[Any] | None:
        """The live entry of ``key`` (moved to most recently used), without awaiting."""
        k = (kind.name, key)
        slot = self._slots.get(k)
        if slot is None:
            return None
        if slot.expires <= time.monotonic():
            self._drop(k)
            return None
        self._slots.move_to_end(k)
        return slot.entry

    async def get(self, kind: Kind[Any], key: str, accept: Accept) -> Cached[Any] | None:
        entry = self.peek(kind, key)
        if entry is not None and not accept(header_of(entry)):
            self.stats.stale += 1
            return None
        return entry

    def store(self, kind: Kind[Any], key: str, entry: Cached[Any]) -> None:
        k = (kind.name, key)
        old = self._slots.get(k)
        if old is not None and old.entry.version > entry.version:
            return
        if entry.size > self.size:
            return  # larger than the whole level: never cached here
        if old is not None:
            self._drop(k)
        self._slots[k] = _Slot(entry, time.monotonic() + self.ttl)
        self._bytes += entry.size
        self.stats.writes += 1
        while self._bytes > self.size:
            self._drop(next(iter(self._slots)))

    async def put(self, kind: Kind[Any], key: str, entry: Cached[Any]) -> None:
        self.store(kind, key, entry)

    def _drop(self, k: Key) -> None:
        slot = self._slots.pop(k, None)
        if slot is not None:
            self._bytes -= slot.entry.size

    async def delete(self, keys: Iterable[Key]) -> None:
        for k in keys:
            if k in self._slots:
                self._drop(k)
                self.stats.invalidations += 1

    async def clear(self) -> None:
        self._slots.clear()
        self._bytes = 0

    async def close(self) -> None:
        await self.clear()


@dataclass(slots=True, kw_only=True)
class ByteLevel:
    """What L2 (Redis) and L3 (disk) share: entries kept as bytes (``_entry``) under
    ``<prefix><kind>:<key>``, each at most ``size`` bytes, expiring after ``ttl`` s.
    A subclass moves the bytes: ``get``, ``put`` through ``_encoded``, ``_remove``."""

    name: str
    size: int
    ttl: float
    prefix: str
    stats: LevelStats = field(default_factory=LevelStats)

    def _key(self, kind_name: str, key: str) -> str:
        return f"{self.prefix}{kind_name}:{key}"

    def _encoded(self, entry: Cached[Any], kind: Kind[Any]) -> bytes | None:
        """The bytes to store, or ``None`` if the entry alone is larger than ``size``."""
        data = encode_entry(header_of(entry), kind.encode(entry.value))
        return None if len(data) > self.size else data

    def _read(self, kind: Kind[Any], key: str, data: bytes, accept: Accept) -> Cached[Any] | None:
        """A stored entry's bytes as a ``Cached`` if its header is accepted (the body is
        decoded only then); a damaged or foreign entry is a miss, never an error."""
        try:
            header, body = decode_entry(data)
            if not accept(header):
                self.stats.stale += 1
                return None
            value = kind.decode(body)
        except Exception as exc:
            log.warning("cache %s: unreadable entry %s:%s (%s)", self.name, kind.name, key, exc)
            return None
        return Cached(
            value, header.version, header.watermarks, header.reflects, header.fetched_at, len(data)
        )

    async def _remove(self, names: list[str]) -> int:
        """Delete these stored keys; how many existed."""
        raise NotImplementedError

    async def delete(self, keys: Iterable[Key]) -> None:
        names = [self._key(kind, key) for kind, key in keys]
        if names:
            self.stats.invalidations += await self._remove(names)
