"""L2: Redis, shared by every process that reaches it (redis-py's ``redis.asyncio``).

An entry is a hash ``{v: version, d: entry bytes}`` under
``<prefix><kind>:<key>``, expiring after ``ttl`` seconds. A write goes through one Lua
script that keeps the stored entry when its version is newer, so a slow reader can never
replace a newer state with the older one it fetched. ``size`` bounds one entry; the
total is the Redis server's ``maxmemory`` (with ``maxmemory-policy allkeys-lru``), a
server setting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestrator.state.cache._entry import Cached
from orchestrator.state.cache._kinds import Kind
from orchestrator.state.cache._levels import Accept, ByteLevel

_SET_IF_NEWER = """
local cur = redis.call('HGET', KEYS[1], 'v')
if cur and tonumber(cur) > tonumber(ARGV[1]) then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[1], 'd', ARGV[2])
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 1
"""


@dataclass(slots=True, kw_only=True)
class RedisLevel(ByteLevel):
    """L2 over a ``redis.asyncio`` client (owned: closed by :meth:`close`)."""

    client: Any
    type: str = "redis"
    _script: Any = None

    @classmethod
    def from_url(cls, name: str, url: str, *, size: int, ttl: float, prefix: str) -> RedisLevel:
        import redis.asyncio as aioredis

        client = aioredis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        return cls(name=name, client=client, size=size, ttl=ttl, prefix=prefix)

    async def get(self, kind: Kind[Any], key: str, accept: Accept) -> Cached[Any] | None:
        data = await self.client.hget(self._key(kind.name, key), "d")
        return None if data is None else self._read(kind, key, bytes(data), accept)

    async def put(self, kind: Kind[Any], key: str, entry: Cached[Any]) -> None:
        data = self._encoded(entry, kind)
        if data is None:
            return
        if self._script is None:
            self._script = self.client.register_script(_SET_IF_NEWER)
        ttl_ms = max(1, int(self.ttl * 1000))
        await self._script(keys=[self._key(kind.name, key)], args=[entry.version, data, ttl_ms])
        self.stats.writes += 1

    async def _remove(self, names: list[str]) -> int:
        return int(await self.client.delete(*names))

    async def clear(self) -> None:
        async for name in self.client.scan_iter(match=f"{self.prefix}*", count=500):
            await self.client.delete(name)

    async def close(self) -> None:
        await self.client.aclose()
