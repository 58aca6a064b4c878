"""The processor of the Redis read model: a consumer-group member folding into Redis.

It is the PostgreSQL processor's twin on the same machinery: the same group member
(``events.group``), the same decode and the one fold (``fold_batch`` over
``events.fold.step``), the same exactly-once rule with the position stored with the
data (see ``projections.redisstore``: a compare-and-set on each execution's applied
offset, then the partition's resume offset). Its own group (``<name>-redis``) reads
the pipeline topic; dead letters stay the PostgreSQL processor's job.

An execution missing from Redis whose next record is not its first event (its hash
expired by TTL, or Redis lost it) is loaded through ``fallback``: in the app, the
PostgreSQL read model once it has applied the records before (see
:func:`postgres_fallback`). A Redis or Kafka outage is ridden out with bounded
backoff; afterwards every partition resumes from the offsets stored in Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime

import asyncpg

from orchestrator.events import (
    SHARED_EVENT_TYPES,
    DecodedRecord,
    EventCodecLike,
    Fenced,
    GroupMember,
    GroupProcess,
    KafkaSecurity,
    MemberSettings,
    Outage,
    Position,
    RawRecord,
    TopicPartition,
    codec_for,
    decode_records,
    ride_out,
)
from orchestrator.projections._batch import TP, fold_batch
from orchestrator.projections.errors import is_outage
from orchestrator.projections.positions import wait_for_position
from orchestrator.projections.processor import member_consumer_settings
from orchestrator.projections.redisstore import (
    RedisReadModelStore,
    StoredExecution,
    Write,
    is_redis_outage,
)
from orchestrator.projections.settings import ProjectionSettings
from orchestrator.projections.store import ReadModelStore

logger = logging.getLogger(__name__)

Fallback = Callable[[str, Position], Awaitable[StoredExecution | None]]
"""Load an execution Redis does not hold, as of (at least) the record before ``Position``."""

REDIS_GROUP_SUFFIX = "-redis"


def postgres_fallback(
    pool: asyncpg.Pool, settings: ProjectionSettings, *, timeout: float = 30.0
) -> Fallback:
    """Load from the PostgreSQL read model once it has applied the record before."""
    store = ReadModelStore(settings)

    async def load(execution_id: str, position: Position) -> StoredExecution | None:
        if position.offset > 0:
            before = replace(position, offset=position.offset - 1)
            await wait_for_position(pool, settings.name, before, timeout)
        async with pool.acquire() as conn:
            found = (await store.load_executions(conn, [execution_id])).get(execution_id)
        if found is None or found.last_position is None:
            return None
        return StoredExecution(found, found.last_position[2])

    return load


def _transient(exc: BaseException) -> bool:
    return is_redis_outage(exc) or is_outage(exc)


class RedisProjector(GroupProcess):
    """One member of the Redis read model's group; ``async with`` it and ``run()`` it.

    The group plumbing is ``events.group.GroupMember``'s; the offsets stay in Redis,
    fenced by the Lua compare-and-set on each execution (``projections.redisstore``)."""

    def __init__(
        self,
        settings: ProjectionSettings,
        store: RedisReadModelStore,
        bootstrap: str,
        *,
        codec: EventCodecLike | None = None,
        security: KafkaSecurity | None = None,
        fallback: Fallback | None = None,
        max_cached: int = 10_000,
    ) -> None:
        self.settings = settings
        self.store = store
        self.group = store.projection
        self._codec = codec or codec_for(settings.limits)
        consumer = member_consumer_settings(
            f"{settings.client_id}-redis", settings.session_timeout_ms
        )
        if security is not None:
            consumer = replace(consumer, security=security)
        label = f"redis read model {self.group}"
        topics = [settings.pipeline_topic]
        member = MemberSettings.of(settings, self.group, topics, consumer, label, lag_metric=False)
        self.member = GroupMember(bootstrap, member, self)
        self._fallback = fallback
        self._max_cached = max_cached
        self._next: dict[TP, int] = {}
        self._cache: OrderedDict[str, StoredExecution] = OrderedDict()
        self._stale: set[str] = set()
        self.batches = 0
        self.records = 0

    @property
    def positions(self) -> dict[TP, int]:
        """The next offset of each owned partition (what Redis stores once written)."""
        return dict(self._next)

    # --- what the member asks (events.group.BatchHandler) --------------------------

    dependencies = "Redis or Kafka"

    is_transient = staticmethod(_transient)

    async def release(self, tps: frozenset[TopicPartition]) -> None:
        for tp in tps:
            self._next.pop((tp.topic, tp.partition), None)
        self._cache.clear()

    async def claim(self, tps: frozenset[TopicPartition]) -> dict[TopicPartition, int]:
        """Read the partitions from the offsets stored in Redis."""
        stored = await self.store.offsets((tp.topic, tp.partition) for tp in tps)
        self._cache.clear()
        self._next.update(stored)
        return {TopicPartition(t, p): o for (t, p), o in stored.items()}

    async def handle(self, records: list[RawRecord]) -> None:
        """Fold one batch into Redis, exactly once (see the module docstring)."""
        owned = [r for r in records if r.position.offset >= self._next.get(_tp(r), 1 << 62)]
        if not owned:
            return
        decoded = decode_records(self._codec, owned)
        bases = await self._bases(decoded)
        fresh = [d for d in decoded if _fresh(d, bases)]
        loaded = {eid: None if b is None else b.entry for eid, b in bases.items()}
        changes = fold_batch(fresh, loaded, {})
        applied: dict[str, int] = {}
        for item in fresh:
            eid = item.envelope.execution_id if item.envelope else None
            if eid is not None:
                applied[eid] = item.record.position.offset
        tasks: dict[str, dict[str, datetime | None]] = {}
        for (eid, task_id), when in changes.task_updates.items():
            tasks.setdefault(eid, {})[task_id] = when
        for eid, base in bases.items():  # loaded from elsewhere, already past the batch:
            if base is not None and base.cas is not None and eid not in changes.executions:
                changes.executions[eid] = base.entry  # put it back into Redis as it is
                applied[eid] = base.applied
        order = list(changes.executions)
        writes: list[Write] = []
        for eid in order:
            base = bases.get(eid)
            full = base is None or base.cas is not None  # no hash, or a stale one
            expected = -1 if base is None else base.expected
            updates = None if full else tasks.get(eid, {})
            writes.append((changes.executions[eid], expected, applied[eid], updates))
        found = await self.store.write_many(writes)
        conflicts = {eid: f for eid, f in zip(order, found, strict=True) if f is not None}
        for eid in order:
            if eid not in conflicts:
                self._remember(eid, StoredExecution(changes.executions[eid], applied[eid]))
        ends: dict[TP, int] = {}
        for r in owned:
            ends[_tp(r)] = r.position.offset + 1
        if conflicts:
            raise self._rewind(conflicts, bases, ends)
        await self.store.advance(ends)
        self._next.update(ends)
        self.batches += 1
        self.records += len(owned)

    async def _bases(self, decoded: list[DecodedRecord]) -> dict[str, StoredExecution | None]:
        """The stored state of every execution of the batch (cache, Redis, fallback)."""
        first: dict[str, DecodedRecord] = {}
        for item in decoded:
            event = item.envelope
            if event is None or event.execution_id is None:
                continue
            if event.event_type in SHARED_EVENT_TYPES:
                continue
            first.setdefault(event.execution_id, item)
        bases: dict[str, StoredExecution | None] = {}
        missing = []
        for eid in first:
            hit = self._cache.get(eid)
            if hit is not None:
                bases[eid] = hit
            elif eid not in self._stale:
                missing.append(eid)
        bases.update(await self.store.load_many(missing))
        for eid, item in first.items():
            event = item.envelope
            assert event is not None
            if bases.get(eid) is None and (eid in self._stale or event.sequence != 1):
                bases[eid] = await self._fall_back(eid, item)
        return bases

    async def _fall_back(self, eid: str, item: DecodedRecord) -> StoredExecution | None:
        self._stale.discard(eid)
        current = await self.store.load(eid)
        if self._fallback is None:
            return current
        found = await self._fallback(eid, item.record.position)
        if found is None or (current is not None and current.applied >= found.applied):
            return current
        found.cas = -1 if current is None else current.applied
        return found

    def _remember(self, eid: str, stored: StoredExecution) -> None:
        self._cache[eid] = stored
        self._cache.move_to_end(eid)
        while len(self._cache) > self._max_cached:
            self._cache.popitem(last=False)

    def _rewind(
        self,
        conflicts: dict[str, int],
        bases: dict[str, StoredExecution | None],
        ends: dict[TP, int],
    ) -> Fenced:
        """Someone else wrote these executions, or Redis lost them: nothing of the batch
        is marked done; the member re-reads every partition from the stored offsets."""
        for eid, found in conflicts.items():
            base = bases.get(eid)
            expected = -1 if base is None else base.expected
            if found < expected:  # expired or lost: reload it through the fallback
                self._stale.add(eid)
        self._cache.clear()
        return Fenced(
            ends,
            f"not marked done: {len(conflicts)} execution(s) changed under us (another "
            "member, or expired / lost in Redis)",
        )


def _tp(record: RawRecord) -> TP:
    return (record.position.topic, record.position.partition)


def _fresh(item: DecodedRecord, bases: dict[str, StoredExecution | None]) -> bool:
    """A record not yet in its execution's stored state (undecodable ones: no state)."""
    event = item.envelope
    if event is None or event.execution_id is None or event.event_type in SHARED_EVENT_TYPES:
        return False
    base = bases.get(event.execution_id)
    return base is None or item.record.position.offset > base.applied


async def run_redis_processor(projector: RedisProjector, *, handle_signals: bool = True) -> None:
    """Run ``projector`` until SIGTERM/SIGINT (a clean stop) or an unexpected error,
    which is logged once with its context and raised; outages are ridden out."""
    loop = asyncio.get_running_loop()
    if handle_signals:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, projector.request_stop)
    try:
        started = Outage(f"redis read model {projector.group}: starting", logger)
        await ride_out(projector.start, outage=started, transient=_transient)
        try:
            await projector.run()
        finally:
            await projector.stop()
    except Exception as exc:
        logger.error(
            "redis read model %s stopped (partitions %s): %s: %s",
            projector.group,
            projector.positions,
            type(exc).__name__,
            exc,
            exc_info=not _transient(exc),
        )
        raise
    finally:
        if handle_signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                with contextlib.suppress(ValueError, RuntimeError):
                    loop.remove_signal_handler(sig)
