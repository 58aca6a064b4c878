"""The Redis read model: execution and task state in one hash per execution.

Layout (``P`` is ``key_prefix``, default ``orchestrator:``)::

    P{<execution_id>}:execution   hash  status, applied, pipeline (JSON), task:<id> (JSON)
    P{projection:<name>}:offsets  hash  <topic>|<partition> -> next offset to read

The braces are Redis Cluster hash tags: everything of one execution sits in one slot,
so the script that writes it is atomic on a cluster too. The exactly-once rule is the
PostgreSQL read model's, kept per execution: ``applied`` (the log offset of the last
record folded into the hash) is written by the same script as the state, and only if
it still holds the offset the processor folded on top of (compare-and-set). The
offsets hash is where a restarted processor resumes; it is advanced only after the
batch's executions are written, so it never runs ahead of them, and a record at or
below an execution's ``applied`` is skipped on re-read: a kill at any instant loses
nothing and applies nothing twice. Rows use the PostgreSQL model's lossless mapping
(``projections.readmodel``), JSON-encoded. TTLs: ``ttl_active`` seconds after the last
change for running executions, ``ttl_completed`` once terminal (0: never expire).
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ClusterError, RedisClusterException, RedisError, TryAgainError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from orchestrator.events import PIPELINE_MACHINE, ExecutionState
from orchestrator.projections import readmodel as rm
from orchestrator.projections._batch import TP, ExecutionEntry

RedisClient = Redis | RedisCluster
"""What the store talks to: one server, or a cluster (``cluster_mode``)."""

REDIS_OUTAGE: tuple[type[BaseException], ...] = (
    RedisConnectionError,  # BusyLoadingError (loading its AOF after a restart) is one
    RedisTimeoutError,
    ClusterError,  # ClusterDownError, "TTL exhausted" while a node is away
    RedisClusterException,  # no node of the cluster reachable
    TryAgainError,
    ConnectionError,
    TimeoutError,
)
"""Errors of an unreachable Redis (a restart, a failover): ridden out, not fatal."""

_APPLY = """
local cur = redis.call('HGET', KEYS[1], 'applied')
if not cur then cur = '-1' end
if cur ~= ARGV[1] then return cur end
redis.call('HSET', KEYS[1], 'applied', ARGV[2])
for i = 4, #ARGV, 200 do
  redis.call('HSET', KEYS[1], unpack(ARGV, i, math.min(i + 199, #ARGV)))
end
if tonumber(ARGV[3]) > 0 then
  redis.call('EXPIRE', KEYS[1], ARGV[3])
else
  redis.call('PERSIST', KEYS[1])
end
return 'ok'
"""
"""Write an execution if its ``applied`` is still ARGV[1]; else return what it is."""

_ADVANCE = """
for i = 1, #ARGV, 2 do
  local cur = tonumber(redis.call('HGET', KEYS[1], ARGV[i]) or '-1')
  if tonumber(ARGV[i + 1]) > cur then redis.call('HSET', KEYS[1], ARGV[i], ARGV[i + 1]) end
end
return 'ok'
"""
"""Move partition offsets forward only (a late writer never moves one back)."""

_TERMINAL = PIPELINE_MACHINE.terminal
_CONCURRENCY = 64
_PIPELINE = 500

Write = tuple[ExecutionEntry, int, int, Mapping[str, datetime | None] | None]
"""What :meth:`RedisReadModelStore.write_many` takes: entry, expected, applied, tasks."""


def redis_client(url: str, *, cluster_mode: bool = False) -> RedisClient:
    """A redis-py asyncio client for ``url``; a cluster client discovers every node."""
    options: dict[str, Any] = {"socket_timeout": 5.0, "socket_connect_timeout": 5.0}
    if cluster_mode:
        return RedisCluster.from_url(url, **options)
    # Blocking: a burst of reads beside the processor waits for a connection instead of
    # failing with "Too many connections".
    pool = BlockingConnectionPool.from_url(url, max_connections=128, timeout=10, **options)
    return Redis.from_pool(pool)


def is_redis_outage(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) means Redis is unreachable for now."""
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return False
        if isinstance(seen, REDIS_OUTAGE) or _leaked_transport_error(seen):
            return True
        seen = seen.__cause__
    return False


def _leaked_transport_error(exc: BaseException) -> bool:
    """redis-py's asyncio connection can leak ``AttributeError`` / ``TypeError`` from a
    socket the server closed (redis/redis-py#4287), instead of ``ConnectionError``:
    raised inside its connection module, it is a lost connection, not a bug of ours."""
    if not isinstance(exc, AttributeError | TypeError):
        return False
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(_CONNECTION_MODULE):
            return True
        tb = tb.tb_next
    return False


_CONNECTION_MODULE = os.path.join("redis", "asyncio", "connection.py")


@dataclass(frozen=True, slots=True)
class RedisKeys:
    """Key names under ``prefix``; a brace in the prefix would break the hash tags."""

    prefix: str = "orchestrator:"

    def __post_init__(self) -> None:
        if "{" in self.prefix or "}" in self.prefix:
            raise ValueError(f"key_prefix {self.prefix!r}: braces are Redis hash tags")

    def execution(self, execution_id: str) -> str:
        return f"{self.prefix}{{{execution_id}}}:execution"

    def offsets(self, projection: str) -> str:
        return f"{self.prefix}{{projection:{projection}}}:offsets"


@dataclass(slots=True)
class StoredExecution:
    """An execution as read from Redis, with the offset its hash was last written at."""

    entry: ExecutionEntry
    applied: int
    """The log offset of the last record folded into ``entry``."""
    cas: int | None = None
    """What the hash's ``applied`` holds when it differs from ``applied`` (state loaded
    from elsewhere: -1 for no hash, else the stale hash's offset); the next write then
    rewrites every field."""

    @property
    def expected(self) -> int:
        """The ``applied`` a conditional write expects to find."""
        return self.applied if self.cas is None else self.cas


def _encode_row(columns: Sequence[tuple[str, str]], row: rm.Row) -> str:
    out: dict[str, Any] = {}
    for (name, kind), value in zip(columns, row, strict=True):
        out[name] = value.isoformat() if kind == "timestamptz" and value is not None else value
    return json.dumps(out, separators=(",", ":"), ensure_ascii=False)


def _decode_row(columns: Sequence[tuple[str, str]], text: str | bytes) -> dict[str, Any]:
    raw = json.loads(text)
    for name, kind in columns:
        if kind == "timestamptz" and raw.get(name) is not None:
            raw[name] = datetime.fromisoformat(raw[name])
    return dict(raw)


def _listed(field: bytes | str | None, pipeline: Mapping[str, Any]) -> list[Any]:
    """The checkpoint list of a hash: its ``checkpoints`` field, or where hashes written
    before it had it, inside the ``pipeline`` row (JSON text)."""
    if field is not None:
        found: list[Any] = json.loads(field)
        return found
    older = pipeline.get("checkpoints")
    return json.loads(older) if isinstance(older, str) else list(older or [])


def execution_fields(
    entry: ExecutionEntry, task_updates: Mapping[str, datetime | None] | None
) -> list[str]:
    """The hash fields of ``entry``: status, pipeline, and the tasks changed (task id ->
    when, as the PostgreSQL model stamps ``updated_at``; None: every task)."""
    state = entry.state
    pipeline = rm.pipeline_row(
        state, event_count=entry.event_count, last_position=entry.last_position
    )
    listed = [rm.checkpoint_json(ref) for ref in state.checkpoints]
    fields = [
        "status", state.status,
        "pipeline", _encode_row(rm.PIPELINE_COLUMNS, pipeline),
        "checkpoints", json.dumps(listed, separators=(",", ":"), ensure_ascii=False),
        "partition", f"{entry.tp[0]}|{entry.tp[1]}",
    ]  # fmt: skip
    for ordinal, (task_id, task) in enumerate(state.tasks.items()):
        if task_updates is None or task_id in task_updates:
            when = state.updated_at if task_updates is None else task_updates[task_id]
            row = rm.task_row(state, task, ordinal, when)
            fields += [f"task:{task_id}", _encode_row(rm.TASK_COLUMNS, row)]
    return fields


def execution_from_hash(found: Mapping[bytes, bytes]) -> StoredExecution | None:
    """The execution a hash holds (``None`` for an empty or foreign hash)."""
    if b"pipeline" not in found or b"applied" not in found:
        return None
    pipeline = _decode_row(rm.PIPELINE_COLUMNS, found[b"pipeline"])
    tasks = [
        _decode_row(rm.TASK_COLUMNS, value)
        for key, value in found.items()
        if key.startswith(b"task:")
    ]
    listed = _listed(found.get(b"checkpoints"), pipeline)
    state = rm.execution_from_rows(
        pipeline, tasks, tuple(rm.checkpoint_from_json(c) for c in listed)
    )
    topic, _, partition = found[b"partition"].decode().rpartition("|")
    last = pipeline["last_topic"], pipeline["last_partition"], pipeline["last_offset"]
    entry = ExecutionEntry(
        state=state,
        event_count=pipeline["event_count"],
        tp=(topic, int(partition)),
        last_position=None if last[0] is None else last,
    )
    return StoredExecution(entry, int(found[b"applied"]))


def ttl_for(state: ExecutionState, ttl_active: int, ttl_completed: int) -> int:
    """Seconds the hash of ``state`` lives after this write (0: no expiry)."""
    return ttl_completed if state.status in _TERMINAL else ttl_active


class RedisReadModelStore:
    """Reads and conditional writes of the Redis read model of one projection."""

    def __init__(
        self,
        client: RedisClient,
        projection: str,
        *,
        keys: RedisKeys | None = None,
        ttl_active: int = 3600,
        ttl_completed: int = 86400,
    ) -> None:
        self.client = client
        self.projection = projection
        self.keys = keys or RedisKeys()
        self.ttl_active = ttl_active
        self.ttl_completed = ttl_completed
        self._apply = client.register_script(_APPLY)
        self._advance = client.register_script(_ADVANCE)

    async def load(self, execution_id: str) -> StoredExecution | None:
        """One execution as stored (``None`` if absent or expired)."""
        found = await self.client.hgetall(self.keys.execution(execution_id))
        return execution_from_hash(cast(Mapping[bytes, bytes], found))

    async def load_pipeline_row(self, execution_id: str) -> dict[str, Any] | None:
        """The execution's ``pipeline_states`` row as Redis holds it (JSON columns
        decoded, as the API's pool decodes ``jsonb``), ``None`` if absent or expired."""
        key = self.keys.execution(execution_id)
        text, listed = await self.client.hmget(key, ["pipeline", "checkpoints"])
        if text is None:
            return None
        row = _decode_row(rm.PIPELINE_COLUMNS, text)
        for name, kind in rm.PIPELINE_COLUMNS:
            if kind == "jsonb" and isinstance(row.get(name), str):
                row[name] = json.loads(row[name])
        row["checkpoints"] = _listed(listed, row)
        return row

    async def load_many(self, execution_ids: Iterable[str]) -> dict[str, StoredExecution | None]:
        ids = list(execution_ids)
        found = await bounded(self.load(eid) for eid in ids)
        return dict(zip(ids, found, strict=True))

    async def write(
        self,
        entry: ExecutionEntry,
        expected: int,
        applied: int,
        task_updates: Mapping[str, datetime | None] | None,
    ) -> int | None:
        """Write ``entry`` at ``applied`` if the stored ``applied`` is ``expected`` (-1:
        absent); ``None`` when written, else the offset found (another writer, or a key
        that expired or was lost)."""
        state = entry.state
        ttl = ttl_for(state, self.ttl_active, self.ttl_completed)
        fields = execution_fields(entry, task_updates)
        result = await self._apply(
            keys=[self.keys.execution(state.execution_id)],
            args=[str(expected), str(applied), str(ttl), *fields],
        )
        return _verdict(result)

    async def write_many(self, writes: Sequence[Write]) -> list[int | None]:
        """:meth:`write` for many executions, pipelined (``_PIPELINE`` per round trip;
        EVAL, so a cluster pipeline routes each to its slot's node): one answer each."""
        out: list[int | None] = []
        for start in range(0, len(writes), _PIPELINE):
            pipe = self.client.pipeline(transaction=False)
            for entry, expected, applied, task_updates in writes[start : start + _PIPELINE]:
                ttl = ttl_for(entry.state, self.ttl_active, self.ttl_completed)
                fields = execution_fields(entry, task_updates)
                key = self.keys.execution(entry.state.execution_id)
                pipe.eval(_APPLY, 1, key, str(expected), str(applied), str(ttl), *fields)
            out += [_verdict(r) for r in await pipe.execute()]
        return out

    async def offsets(self, tps: Iterable[TP]) -> dict[TP, int]:
        """Where to resume each partition (0 where nothing was stored yet)."""
        tps = list(tps)
        if not tps:
            return {}
        found = await self.client.hmget(
            self.keys.offsets(self.projection), [f"{t}|{p}" for t, p in tps]
        )
        return {tp: int(v) if v is not None else 0 for tp, v in zip(tps, found, strict=True)}

    async def advance(self, next_offsets: Mapping[TP, int]) -> None:
        """Move the resume offsets forward (never back)."""
        if not next_offsets:
            return
        args: list[str] = []
        for (topic, partition), offset in next_offsets.items():
            args += [f"{topic}|{partition}", str(offset)]
        await self._advance(keys=[self.keys.offsets(self.projection)], args=args)


def _verdict(result: Any) -> int | None:
    text = result.decode() if isinstance(result, bytes) else str(result)
    return None if text == "ok" else int(text)


async def bounded(coros: Iterable[Any]) -> list[Any]:
    """Run ``coros`` concurrently, at most ``_CONCURRENCY`` at a time (a batch may touch
    thousands of executions; a client's pool has a connection cap), results in order."""
    gate = asyncio.Semaphore(_CONCURRENCY)

    async def one(coro: Any) -> Any:
        async with gate:
            return await coro

    return list(await asyncio.gather(*(one(c) for c in coros)))


__all__ = [
    "REDIS_OUTAGE",
    "RedisClient",
    "RedisError",
    "RedisKeys",
    "RedisReadModelStore",
    "StoredExecution",
    "Write",
    "bounded",
    "execution_fields",
    "execution_from_hash",
    "is_redis_outage",
    "redis_client",
    "ttl_for",
]
