"""The snapshotter: its own consumer group, folding the log and writing snapshots.

Each batch: decode, fold into the executions held in memory (restoring an execution
met for the first time from its latest snapshot), ask the policy which snapshots are
due, write those objects, then in ONE PostgreSQL transaction upsert their index rows
and move this group's offsets (``projection_offsets`` under the snapshotter's name) to
the low watermark of ``snapshots._tracker``: the lowest offset from which every
execution held in memory can be rebuilt from its last snapshot. A SIGKILL anywhere
therefore loses nothing: the restart reads from that offset, restores each execution
it meets from its newest snapshot, skips the events that snapshot covers, and writes
the same objects under the same keys again if it must.

The group plumbing is the one member of ``events.group``; the offsets are fenced by
the one rule of ``projections.offsets``: a member that lost a partition in a
rebalance it did not hear about cannot move them; it forgets what it held and
re-reads its assignment.
An execution whose own snapshot is unusable, or whose first events are gone from the
log, is rebuilt from the projection's archive (``execution_events``) once that
projection has caught up to where the snapshotter reads, then snapshotted at once.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

from orchestrator.events import (
    ConsumerSettings,
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
    decode_records,
    default_codec,
    enabled,
    quiet_client_logs,
    record_snapshots,
    ride_out,
    start_snapshotter,
    stop_on_signals,
    traceparent_of,
)
from orchestrator.projections import (
    Fence,
    PostgresOffsets,
    close_pool,
    is_outage,
    migrate,
    open_pool,
)
from orchestrator.snapshots._bootstrap import ArchiveSource, ExecutionBootstrap
from orchestrator.snapshots._tracker import TP, SnapshotTracker
from orchestrator.snapshots.codec import SnapshotCodec
from orchestrator.snapshots.errors import SnapshotStoreError, SnapshotterFailed
from orchestrator.snapshots.policy import SnapshotPolicy
from orchestrator.snapshots.postgres import add_rows
from orchestrator.snapshots.settings import SnapshotterSettings
from orchestrator.snapshots.store import KeyLayout, SnapshotStore
from orchestrator.snapshots.writer import SnapshotWriter

logger = logging.getLogger(__name__)


def is_snapshot_outage(exc: BaseException) -> bool:
    """An outage of PostgreSQL or Kafka (``projections.errors.is_outage``), or a
    retriable failure of the snapshot store (S3 unreachable, 5xx), a few causes deep."""
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            break
        if isinstance(seen, SnapshotStoreError) and seen.retriable:
            return True
        seen = seen.__cause__
    return is_outage(exc)


class Snapshotter(GroupProcess):
    """One member of the snapshotter group; ``async with`` it and ``run()`` it.

    The group plumbing is ``events.group.GroupMember``'s; the offsets and their fence
    are ``projections.offsets``'s, as for a projection."""

    def __init__(
        self,
        settings: SnapshotterSettings,
        *,
        dsn: str,
        bootstrap: str,
        store: SnapshotStore,
        codec: SnapshotCodec | None = None,
        policy: SnapshotPolicy | None = None,
        layout: KeyLayout | None = None,
        event_codec: EventCodecLike | None = None,
        consumer_settings: ConsumerSettings | None = None,
        pool: Any = None,
        security: KafkaSecurity | None = None,
    ) -> None:
        """``pool``: the process's asyncpg pool, borrowed (not closed); else its own.
        ``security``: SASL / TLS of the consumer (replaces that of ``consumer_settings``)."""
        self.settings = settings
        self.dsn = dsn
        self._borrowed_pool = pool
        self.bootstrap_servers = bootstrap
        self.store = store
        self.codec = codec or SnapshotCodec()
        self.policy = policy or SnapshotPolicy()
        self._writer = SnapshotWriter(
            store, self.codec, layout or KeyLayout(), settings.write_concurrency
        )
        self._event_codec = event_codec or default_codec()
        consumer = consumer_settings or ConsumerSettings(
            client_id=settings.client_id, fetch_max_wait_ms=50
        )
        if security is not None:
            consumer = replace(consumer, security=security)
        label = f"snapshotter {settings.name}"
        member = MemberSettings.of(settings, settings.name, [settings.topic], consumer, label)
        self.member = GroupMember(bootstrap, member, self)
        self._offsets = PostgresOffsets(settings.name)
        self.tracker = SnapshotTracker(self.policy, clean_cache=settings.clean_cache)
        self._pool: Any = None
        self._bootstrap: Any = None
        self._committed: dict[TP, Fence] = {}
        self._next: dict[TP, int] = {}
        self.batches = 0
        self.records = 0
        self.snapshots_written = 0
        self.poison_records = 0

    # --- lifecycle -----------------------------------------------------------------

    async def start(self) -> None:
        """Connect to PostgreSQL and Kafka and subscribe; the group is joined by ``run``."""
        self._pool = self._borrowed_pool or await open_pool(self.dsn, max_size=4)
        s = self.settings
        source = ArchiveSource(
            s.index_table,
            s.events_table,
            s.tables.checkpoints,
            s.archive_projection,
            s.archive_wait_s,
        )
        self._bootstrap = ExecutionBootstrap(
            self._pool, self.store, self.codec, source, self.tracker, self._event_codec
        )
        await self.member.start()
        start_snapshotter(await self._newest_snapshot())

    async def _newest_snapshot(self) -> float | None:
        """Unix time of the newest snapshot in the index (None: no index or no row yet)."""
        table = self.settings.index_table
        if not await self._pool.fetchval("SELECT to_regclass($1) IS NOT NULL", table):
            return None
        newest = f"SELECT extract(epoch FROM max(created_at)) FROM {table}"
        value = await self._pool.fetchval(newest)
        return None if value is None else float(value)

    async def stop(self) -> None:
        """Leave the group and close connections; safe to call twice."""
        pool, self._pool = self._pool, None
        try:
            await self.member.stop()
        finally:
            if pool is not None and pool is not self._borrowed_pool:
                await close_pool(pool)

    async def run(self) -> None:
        """Consume, fold, snapshot and commit until ``request_stop`` (see
        ``events.group``): outages of PostgreSQL, Kafka or the snapshot store are
        ridden out, then every partition is read again from its committed low
        watermark, as after a restart, so nothing is lost."""
        await self.member.run()
        logger.info(
            "snapshotter %s: stopping after %s batch(es), %s snapshot(s)",
            self.settings.name,
            self.batches,
            self.snapshots_written,
        )

    @property
    def positions(self) -> dict[TP, int]:
        """The committed offsets (low watermarks) of the owned partitions."""
        return {tp: fence[0] for tp, fence in self._committed.items()}

    @property
    def read_positions(self) -> dict[TP, int]:
        """What was read (the committed watermark trails on purpose): for the lag metric."""
        return dict(self._next)

    # --- what the member asks (events.group.BatchHandler) --------------------------

    dependencies = "PostgreSQL, Kafka or the snapshot store"

    is_transient = staticmethod(is_snapshot_outage)

    async def release(self, tps: frozenset[TopicPartition]) -> None:
        self._forget({(tp.topic, tp.partition) for tp in tps})

    def _forget(self, tps: set[TP]) -> None:
        self.tracker.release(tps)
        for tp in tps:
            self._committed.pop(tp, None)
            self._next.pop(tp, None)

    async def claim(self, tps: frozenset[TopicPartition]) -> dict[TopicPartition, int]:
        """Forget what is held for these partitions; read them from their stored low
        watermark (a new partition from the log's earliest retained offset)."""
        wanted = {(tp.topic, tp.partition) for tp in tps}
        self._forget(wanted)
        async with self._pool.acquire() as conn:
            stored = await self._offsets.stored(conn, wanted)
            missing = [TopicPartition(t, p) for t, p in wanted if (t, p) not in stored]
            start: dict[TP, int] = {}
            if missing:
                earliest = await self.member.consumer.beginning_offsets(missing)
                start = {(tp.topic, tp.partition): o for tp, o in earliest.items()}
                stored = await self._offsets.claim(conn, wanted, start)
        for tp, fence in stored.items():
            self._committed[tp] = fence
            self._next[tp] = fence[0]
        return {TopicPartition(t, p): fence[0] for (t, p), fence in stored.items()}

    async def handle(self, raw: list[RawRecord]) -> None:
        decoded = [
            r
            for r in decode_records(self._event_codec, raw)
            if (r.position.topic, r.position.partition) in self._committed
        ]
        firsts: dict[str, DecodedRecord] = {}
        for rec in decoded:
            tp = (rec.position.topic, rec.position.partition)
            self._next[tp] = max(self._next[tp], rec.position.offset + 1)
            if rec.envelope is None:
                self.poison_records += 1
                logger.warning("snapshotter: skipping a poison record: %s", rec.error)
                continue
            eid = rec.envelope.execution_id
            if eid is not None and not self.tracker.knows(eid) and eid not in firsts:
                firsts[eid] = rec
        await self._bootstrap.meet(firsts)
        for rec in decoded:
            if rec.envelope is not None and rec.envelope.execution_id is not None:
                self.tracker.fold(rec.position, rec.envelope)
        reasons = self.tracker.reasons()
        pending = self.tracker.take_pending()
        parents: dict[Position, str] = {}
        if pending and enabled():
            for r in decoded:
                found = traceparent_of(r.record.headers)
                if found is not None:
                    parents[r.position] = found
        rows = await self._writer.write_many(pending, parents)
        moves: dict[TP, int] = {}
        for tp, (committed, _) in self._committed.items():
            low = self.tracker.watermark(tp, self._next[tp])
            if low != committed:
                moves[tp] = low
        if rows or moves:
            async with self._pool.acquire() as conn, conn.transaction():
                await add_rows(conn, rows, self.settings.index_table)
                expected = {tp: self._committed[tp] for tp in moves}
                lost, _ = await self._offsets.check(conn, expected)
                if lost:
                    raise Fenced(lost)
                await self._offsets.advance(conn, moves)
        self.tracker.committed()
        for tp, low in moves.items():
            self._committed[tp] = (low, self._committed[tp][1])
        self.records += len(raw)
        self.snapshots_written += len(rows)
        if rows:
            record_snapshots([(r.raw_size_bytes, r.size_bytes) for r in rows], reasons)
        if raw:
            self.batches += 1
        if rows:
            logger.info(
                "snapshotter %s: %s snapshot(s) %s; offsets %s",
                self.settings.name,
                len(rows),
                reasons,
                {f"{t}[{p}]": o for (t, p), o in sorted(self.positions.items())},
            )


async def run_snapshotter(
    snapshotter: Snapshotter,
    *,
    handle_signals: bool = True,
) -> None:
    """Migrate, then run until SIGTERM/SIGINT (a clean stop) or an unexpected error,
    which is logged once with its context and raised (the process exits non-zero)."""
    quiet_client_logs()

    async def migrated() -> None:
        pool = await open_pool(snapshotter.dsn, max_size=1)
        try:
            async with pool.acquire() as conn:
                await migrate(conn, snapshotter.settings.tables)
        finally:
            await close_pool(pool)

    starting = Outage(f"snapshotter {snapshotter.settings.name}: starting, PostgreSQL", logger)
    await ride_out(migrated, outage=starting, transient=is_outage)
    with stop_on_signals(snapshotter.request_stop, handle_signals):
        try:
            async with snapshotter:
                await snapshotter.run()
        except SnapshotterFailed as exc:
            logger.error("%s", exc, exc_info=exc.__cause__)
            raise
        except Exception as exc:
            logger.error(
                "snapshotter %s failed (offsets %s): %s",
                snapshotter.settings.name,
                snapshotter.positions,
                exc,
                exc_info=True,
            )
            raise
