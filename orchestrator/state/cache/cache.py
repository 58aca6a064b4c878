"""``StateCache``: the levels in order, in front of the read model.

A read asks each level in turn for an entry its :class:`ReadNeed` accepts (positions
applied, age, and never older than what this process already returned for the key);
a hit in a lower level is copied up; a miss in every level waits for the need's
positions and loads the read model (``read_through``/``cache_aside``: the value is then
stored in every level). Versions only go forward: a level keeps a newer entry over an
older one, and this process keeps the newest version it returned per key, so no reader
here ever sees a key go back in time.

Invalidation: a write made through this process drops the key from every level
(``invalidation.on_write``); the processor's NOTIFY of what it applied drops it in
every process (``invalidation.broadcast``, ``_listener``); with ``write_through`` the
writing process then stores the new value in every level. The NOTIFY names the last
event applied to each key, and from then on a value that does not reflect it is refused
in every level: a load that raced the invalidation (here or in another process) may
still store an older value in a shared level after the delete.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from orchestrator.events import Position
from orchestrator.state.cache._entry import Cached, Header
from orchestrator.state.cache._kinds import EXECUTION, Kind
from orchestrator.state.cache._levels import Key, Level
from orchestrator.state.sync import ReadNeed

log = logging.getLogger(__name__)
_TRACKED = 200_000  # keys whose newest version / invalidation count this process keeps
_RETRY_S = 1.0  # a level that failed is skipped this long before it is tried again


@dataclass(frozen=True, slots=True, kw_only=True)
class CachePolicy:
    """``caching.strategies`` and ``caching.invalidation``."""

    read_through: bool = True
    write_through: bool = False
    cache_aside: bool = False
    on_write: bool = True
    broadcast: bool = True

    @property
    def fill_on_miss(self) -> bool:
        return self.read_through or self.cache_aside


class Source(Protocol):
    """The read model behind the cache."""

    async def wait(self, positions: Sequence[Position]) -> None: ...

    async def load(self, kind: Kind[Any], key: str) -> Cached[Any] | None: ...


class _Counter(OrderedDict[Key, float]):
    """A bounded map of key → number; a forgotten key reads as the highest forgotten."""

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit
        self.floor = 0.0
        self.dropped_at = 0.0  # wall time a key was last forgotten

    def value(self, key: Key) -> float | None:
        return self.get(key)

    def put(self, key: Key, value: float) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > self.limit:
            _, dropped = self.popitem(last=False)
            self.floor = max(self.floor, dropped)
            self.dropped_at = time.time()


def _reflects(h: Header, position: Position) -> bool:
    """Whether a value read at ``h``'s watermarks holds ``position`` (yes when it has
    no watermark on that partition: it is not judged by another projection's NOTIFY)."""
    applied = h.watermarks.get((position.topic, position.partition))
    return applied is None or applied > position.offset


class StateCache:
    """The configured levels (L1 first) over ``source``; ``stats()`` per level."""

    def __init__(
        self, levels: Sequence[Level], source: Source, policy: CachePolicy | None = None
    ) -> None:
        self.levels = list(levels)
        self.source = source
        self.policy = policy or CachePolicy()
        self.loads = 0
        self._newest = _Counter(_TRACKED)  # key → newest version returned here
        self._invalidated = _Counter(_TRACKED)  # key → invalidation count when last dropped
        self._count = 0.0
        self._trust_after = 0.0  # entries fetched before this (wall) time are refused
        self._pending: dict[Key, Kind[Any]] = {}  # written here, awaiting write-through
        self._own: OrderedDict[Key, Position] = OrderedDict()  # this process's last writes
        self._applied_at: OrderedDict[Key, Position] = OrderedDict()  # from the NOTIFYs
        self.local_writer: Callable[[Key], Position | None] = lambda _k: None
        """The position of this process's last write of a key made outside the cache's
        view (an execution writer); set by the runtime."""
        self._background: set[asyncio.Task[Any]] = set()
        self._down: dict[str, float] = {}  # level name -> monotonic time to retry it
        self._trusted_from: dict[str, float] = {}  # level name -> wall time it came back
        self._missed: dict[str, set[Key]] = {}  # level name -> deletes that failed
        self.on_lookup: Callable[[str, bool], None] | None = None
        """Called with (level name, hit) for every lookup: the metrics' hook."""

    # --- reads ---------------------------------------------------------------------

    def _accept(self, key: Key, need: ReadNeed) -> Any:
        now = time.time()
        newest = self._newest.value(key)
        if self.policy.on_write:  # a cached value must reflect this process's writes
            own = [p for p in (self._own.get(key), self.local_writer(key)) if p is not None]
            if own:
                need = ReadNeed(need.positions, need.max_age, need.session, (*need.avoid, *own))
        # What the log applied to the key, as its NOTIFY said: a value that misses it was
        # stored by a load that raced the invalidation, perhaps in another process. A
        # value read where that partition has no watermark (another projection's NOTIFY
        # on the same channel) is not judged by it.
        applied = self._applied_at.get(key)

        def accept(h: Header) -> bool:
            if h.fetched_at < self._trust_after:
                return False
            if need.max_age is not None and now - h.fetched_at > need.max_age:
                return False
            if newest is not None and h.version < newest:
                return False
            if newest is None and h.fetched_at < self._newest.dropped_at:
                return False
            if applied is not None and not _reflects(h, applied):
                return False
            return need.satisfied_by(h.watermarks)

        return accept

    async def read(self, kind: Kind[Any], key: str, need: ReadNeed) -> Cached[Any] | None:
        """The key's entry as ``need`` allows (``None``: the read model has no such key)."""
        k = (kind.name, key)
        accept = self._accept(k, need)
        before = self._invalidation_count(k)
        for i, level in enumerate(self.levels):
            entry = None
            if self._usable(level):
                try:
                    entry = await level.get(kind, key, accept)
                    await self._answered(level)
                except Exception as exc:  # a level that fails is a miss, never a failed read
                    self._failed(level, exc)
            if entry is not None and entry.fetched_at < self._trusted_from.get(level.name, 0):
                level.stats.stale += 1  # stored before an outage: invalidations were missed
                entry = None
            if self.on_lookup is not None:
                self.on_lookup(level.name, entry is not None)
            if entry is None:
                level.stats.misses += 1
                continue
            level.stats.hits += 1
            await self._store(self.levels[:i], kind, key, entry, before)
            return self._served(k, entry, need)
        return await self._load(kind, key, need)

    async def _load(
        self, kind: Kind[Any], key: str, need: ReadNeed, *, fill: bool | None = None
    ) -> Cached[Any] | None:
        k = (kind.name, key)
        fill = self.policy.fill_on_miss if fill is None else fill
        await self.source.wait(need.positions)
        for _ in range(5):
            before = self._invalidation_count(k)
            self.loads += 1
            entry = await self.source.load(kind, key)
            if entry is None:
                return None
            newest = self._newest.value(k)
            if newest is not None and entry.version < newest:
                continue  # an older concurrent read finished late: read again
            if fill:
                await self._store(self.levels, kind, key, entry, before)
            return self._served(k, entry, need)
        raise RuntimeError(f"the read model went back in time for {kind.name} {key!r}")

    def _served(self, k: Key, entry: Cached[Any], need: ReadNeed) -> Cached[Any]:
        newest = self._newest.value(k)
        if newest is None or entry.version > newest:
            self._newest.put(k, entry.version)
        if need.session is not None:
            need.session.observe(entry.reflects)
        return entry

    # --- writes --------------------------------------------------------------------

    def _usable(self, level: Level) -> bool:
        until = self._down.get(level.name)
        return until is None or time.monotonic() >= until

    def _failed(self, level: Level, exc: Exception) -> None:
        if level.name not in self._down:
            log.warning(
                "cache %s (%s) unavailable (%s: %s); reads skip it until it answers",
                level.name,
                level.type,
                type(exc).__name__,
                exc,
            )
        self._down[level.name] = time.monotonic() + _RETRY_S

    async def _answered(self, level: Level) -> None:
        if self._down.pop(level.name, None) is None:
            return
        # Invalidations were missed meanwhile: entries from before are refused here, and
        # the deletes that failed are made now (a server with persistence kept them).
        self._trusted_from[level.name] = time.time()
        missed = self._missed.pop(level.name, set())
        log.warning(
            "cache %s (%s) available again; %d missed invalidations replayed",
            level.name,
            level.type,
            len(missed),
        )
        if missed:
            try:
                if len(missed) > _TRACKED:
                    await level.clear()
                else:
                    await level.delete(missed)
            except Exception as exc:
                self._missed[level.name] = missed
                self._failed(level, exc)

    async def _put_one(self, level: Level, kind: Kind[Any], key: str, entry: Cached[Any]) -> None:
        if not self._usable(level):
            return
        try:
            await level.put(kind, key, entry)
            await self._answered(level)
        except Exception as exc:
            self._failed(level, exc)

    async def _store(
        self, levels: Sequence[Level], kind: Kind[Any], key: str, entry: Cached[Any], before: float
    ) -> None:
        """Store ``entry``, read when the key's invalidation count was ``before``, in
        ``levels``, unless an invalidation came since: one that lands while the puts are
        in flight may run before them on a shared level (another connection), so it is
        made again after them, or a stale entry would outlive it until its TTL."""
        k = (kind.name, key)
        if not levels or before != self._invalidation_count(k):
            return
        for level in levels:
            await self._put_one(level, kind, key, entry)
        if before != self._invalidation_count(k):
            await self.invalidate([k])

    def _invalidation_count(self, k: Key) -> float:
        count = self._invalidated.value(k)
        return self._invalidated.floor if count is None else count

    async def invalidate(self, keys: Iterable[Key]) -> None:
        """Drop ``keys`` from every level (loads in flight for them will not store)."""
        keys = list(keys)
        if not keys:
            return
        for k in keys:
            self._count += 1
            self._invalidated.put(k, self._count)
        for level in self.levels:
            if not self._usable(level):
                self._miss(level, keys)
                continue
            try:
                await level.delete(keys)
                await self._answered(level)
            except Exception as exc:
                self._miss(level, keys)
                self._failed(level, exc)

    def _miss(self, level: Level, keys: list[Key]) -> None:
        """Remember deletes a level missed (beyond ``_TRACKED``: clear it on return)."""
        missed = self._missed.setdefault(level.name, set())
        missed.update(keys[: max(0, _TRACKED + 1 - len(missed))])

    async def wrote(self, kind: Kind[Any], key: str, position: Position) -> None:
        """This process wrote ``key`` at ``position``: drop it now (``on_write``), and with
        ``write_through`` store its new value once the log has applied it."""
        if not self.levels:
            return
        if self.policy.on_write:
            k = (kind.name, key)
            self._own[k] = position
            self._own.move_to_end(k)
            if len(self._own) > _TRACKED:
                self._own.popitem(last=False)
            await self.invalidate([k])
        if self.policy.write_through:
            if self.policy.broadcast:
                self._pending[(kind.name, key)] = kind  # stored by applied()
            else:
                self._spawn(self._write_through(kind, key, [position]))

    def _spawn(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _write_through(self, kind: Kind[Any], key: str, wait: Sequence[Position]) -> None:
        try:
            await self.source.wait(wait)
            await self._load(kind, key, ReadNeed(tuple(wait)), fill=True)
        except Exception as exc:  # the next read loads it instead
            log.debug("write-through of %s %s skipped: %s", kind.name, key, exc)

    async def applied(self, keys: Iterable[Key], at: Mapping[Key, Position] | None = None) -> None:
        """The log applied changes to ``keys`` (the processor's NOTIFY), ``at`` the last
        event of each: drop them, refuse from now on any cached value that does not
        reflect ``at``, then store the new values of those this process wrote
        (``write_through``)."""
        keys = list(keys)
        for k, position in (at or {}).items():
            self._applied_at[k] = position
            self._applied_at.move_to_end(k)
            if len(self._applied_at) > _TRACKED:
                self._applied_at.popitem(last=False)
        await self.invalidate(keys)
        if not self.policy.write_through:
            return
        for k in keys:
            kind = self._pending.pop(k, None)
            if kind is None and k[0] == EXECUTION.name and self.local_writer(k) is not None:
                kind = EXECUTION
            if kind is not None:  # in the background: invalidations keep flowing
                self._spawn(self._write_through(kind, k[1], ()))

    async def untrusted_before(self, when: float) -> None:
        """Refuse entries fetched before ``when``: invalidations may have been missed
        (the listener lost its connection)."""
        self._trust_after = max(self._trust_after, when)
        for level in self.levels:
            if level.type == "memory":
                await level.clear()

    # --- figures and lifecycle -----------------------------------------------------

    def stats(self) -> dict[str, dict[str, float]]:
        """Per level (``l1``...): hits, misses, stale, writes, invalidations, hit_rate;
        ``source``: loads from the read model."""
        out = {level.name: level.stats.as_dict() for level in self.levels}
        out["source"] = {"loads": self.loads}
        return out

    def hit_rates(self) -> dict[str, float]:
        """``cache_hit_rate`` per level."""
        return {level.name: level.stats.hit_rate for level in self.levels}

    async def close(self) -> None:
        for task in list(self._background):
            task.cancel()
        for level in self.levels:
            try:
                await level.close()
            except Exception as exc:
                log.warning("cache %s did not close cleanly: %s", level.name, exc)
