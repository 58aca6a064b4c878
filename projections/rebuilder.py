"""Rebuild a projection from offset zero into fresh tables, then swap them in.

Why: after a fix to the fold or a new column, the read model must be recomputed from
the log (design §4) without a window in which readers see empty or half-built tables.

How::

    1. create <table>__rebuild LIKE <table> for every read-model table
    2. fold every partition from offset 0 into them, as projection <name>__rebuild,
       with the same fenced batch writes as the live processor (crash-safe too)
    2a. where Kafka's retention deleted the start of a partition, the records before
       its earliest offset are folded from the live archive first (``_archive``)
    3. when caught up with the live projection's stored offsets, in ONE transaction:
       lock the live offset rows (the live processor's next write waits), rename
       live -> __old and __rebuild -> live, drop __old, move the rebuilt offsets to
       the live name with a new generation (every running processor's fence fails
       once, so it drops its cache and re-reads the new tables), merge dead letters;
       refuse (and name them) if an execution of the live tables is not in the
       rebuilt ones: a rebuild never drops an execution

The live tables keep serving reads and the live processor keeps writing them until
the swap. A rebuild does not produce its poison records to the DLQ again when the
live projection already recorded them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import asyncpg

from orchestrator.events import (
    PLAINTEXT,
    ConsumerSettings,
    EventCodecLike,
    EventConsumer,
    EventLog,
    KafkaSecurity,
    ProducerSettings,
    TopicPartition,
    default_codec,
)
from orchestrator.projections._archive import (
    archived_records,
    dropped_entities,
    name_some,
    skip_to,
    truncated,
)
from orchestrator.projections._copies import name_copy_indexes, refuse_drift, rename_index
from orchestrator.projections._double_buffer import BatchPipeline
from orchestrator.projections._engine import BatchEngine, BatchResult
from orchestrator.projections.deadletters import DeadLetterSink
from orchestrator.projections.errors import RebuildError
from orchestrator.projections.pools import close_pool, open_pool
from orchestrator.projections.processor import prepare
from orchestrator.projections.settings import OLD_SUFFIX, REBUILD_SUFFIX, ProjectionSettings
from orchestrator.projections.store import OFFSETS_CHANNEL

logger = logging.getLogger(__name__)

SWAPPED_CHANNEL = "orchestrator_projection_swapped"
"""NOTIFY channel: the name of a projection whose tables a rebuild just swapped in."""

_ADVISORY_NAMESPACE = 0x7262  # "rb": rebuild locks, keyed by projection name


@dataclass(frozen=True, slots=True)
class RebuildProgress:
    """Offsets folded so far out of the partitions' end offsets (which keep growing)."""

    done: int
    total: int
    records: int
    elapsed_s: float
    phase: str  # "folding", "catching up", "swapped"


@dataclass(frozen=True, slots=True)
class RebuildReport:
    """What a rebuild did."""

    projection: str
    records: int
    elapsed_s: float
    offsets: dict[tuple[str, int], int]
    swapped: bool
    from_archive: int = 0
    """Records folded from the live archive because Kafka no longer holds them."""


def _pairs(live: ProjectionSettings, rebuilt: ProjectionSettings) -> list[tuple[str, str]]:
    """(live table, its rebuild copy) for every table the read model declares."""
    names, copies = live.table_names(), rebuilt.table_names()
    return [(names[key], copies[key]) for key in names]


def _split(table: str) -> tuple[str, str]:
    schema, _, name = table.rpartition(".")
    return schema or "public", name


async def _fresh_tables(conn: asyncpg.Connection, settings: ProjectionSettings) -> None:
    """Empty ``__rebuild`` copies of the live tables, and no offsets or letters under
    the rebuild's name (a previous, interrupted rebuild starts over)."""
    target = settings.for_rebuild()
    async with conn.transaction():
        for live, copy in _pairs(settings, target):
            await conn.execute(f"DROP TABLE IF EXISTS {copy}")
            await conn.execute(f"CREATE TABLE {copy} (LIKE {live} INCLUDING ALL)")
            await name_copy_indexes(conn, live, copy)
        await conn.execute("DELETE FROM projection_offsets WHERE projection = $1", target.name)
        await conn.execute("DELETE FROM dead_letters WHERE projection = $1", target.name)


class Rebuilder:
    """Folds the log into fresh tables and swaps them in; see the module docstring."""

    def __init__(
        self,
        settings: ProjectionSettings,
        dsn: str,
        bootstrap: str,
        *,
        codec: EventCodecLike | None = None,
        swap: bool = True,
        on_progress: Callable[[RebuildProgress], None] | None = None,
        progress_interval_s: float = 0.5,
        lock_timeout_ms: int = 5000,
        security: KafkaSecurity = PLAINTEXT,
        pool: asyncpg.Pool | None = None,
    ) -> None:
        """``pool``: the process's pool, borrowed (needs two connections free: the
        rebuild's lock and its writes); else one of its own for the run."""
        self.settings = settings
        self._pool = pool
        self._security = security
        self.target = settings.for_rebuild()
        self._dsn = dsn
        self._bootstrap = bootstrap
        self._codec = codec or default_codec()
        self._swap = swap
        self._on_progress = on_progress
        self._progress_interval_s = progress_interval_s
        self._lock_timeout_ms = lock_timeout_ms
        self._archived = 0

    async def run(self) -> RebuildReport:
        """Rebuild, swap when caught up (unless ``swap=False``), return a report."""
        await prepare(self.settings, self._dsn, self._bootstrap, security=self._security)
        pool = self._pool or await open_pool(self._dsn, max_size=4)
        try:
            async with pool.acquire() as guard:
                key = zlib.crc32(self.settings.name.encode()) & 0x7FFF_FFFF
                if not await guard.fetchval(
                    "SELECT pg_try_advisory_lock($1, $2)", _ADVISORY_NAMESPACE, key
                ):
                    raise RebuildError(self.settings.name, "starting", "another rebuild is running")
                try:
                    await _fresh_tables(guard, self.settings)
                    return await self._fold_and_swap(pool)
                finally:
                    # A broken connection released the lock already.
                    with contextlib.suppress(
                        asyncpg.PostgresError, asyncpg.InterfaceError, OSError
                    ):
                        await guard.execute(
                            "SELECT pg_advisory_unlock($1, $2)", _ADVISORY_NAMESPACE, key
                        )
        finally:
            if pool is not self._pool:
                await close_pool(pool)

    async def _fold_and_swap(self, pool: asyncpg.Pool) -> RebuildReport:
        started = time.monotonic()
        async with EventLog(
            self._bootstrap,
            self._codec,
            ProducerSettings(
                client_id=f"{self.settings.client_id}-rebuild",
                compression_type=None,
                security=self._security,
            ),
        ) as dlq:
            engine = BatchEngine(self.target, pool, self._codec, DeadLetterSink(self.target, dlq))
            ends = await _end_offsets(dlq, self.settings.topics)
            async with EventConsumer(
                self._bootstrap,
                ConsumerSettings(
                    client_id=f"{self.settings.client_id}-rebuild", security=self._security
                ),
            ) as consumer:
                consumer.assign(TopicPartition(t, p) for t, p in ends)
                starts = await engine.claim(ends)
                pipeline = BatchPipeline(engine, consumer)
                try:
                    await self._from_archive(pool, consumer, pipeline, starts)
                    return await self._fold_until_swapped(
                        pool, dlq, consumer, pipeline, ends, started
                    )
                finally:
                    await pipeline.abandon()

    async def _from_archive(
        self,
        pool: asyncpg.Pool,
        consumer: EventConsumer,
        pipeline: BatchPipeline,
        starts: dict[tuple[str, int], int],
    ) -> None:
        """Fold the archived records Kafka no longer holds, then seek past them."""
        found = await consumer.beginning_offsets(TopicPartition(t, p) for t, p in starts)
        earliest = {(tp.topic, tp.partition): offset for tp, offset in found.items()}
        ranges = truncated(starts, earliest)
        if ranges:
            logger.info(
                "rebuild of %s: Kafka no longer holds %s; folding them from the archive",
                self.settings.name,
                ", ".join(f"{t}[{p}]@{a}..{b - 1}" for (t, p), (a, b) in sorted(ranges.items())),
            )
            async with pool.acquire() as conn:
                async for page in archived_records(conn, self.settings, ranges):
                    self._check(await pipeline.advance(page))
                    self._archived += len(page)
            self._check(await pipeline.settle())
            behind = {tp: r for tp, r in ranges.items() if pipeline.engine.positions[tp] < r[1]}
            if behind:  # the archive ends before Kafka's earliest (dead letters there)
                async with pool.acquire() as conn:
                    await skip_to(conn, self.target.name, behind)
                await pipeline.engine.claim(behind)  # expect the rows as they are now
        positions = pipeline.engine.positions
        for (t, p), start in starts.items():
            at = max(positions.get((t, p), start), earliest.get((t, p), 0))
            consumer.seek(TopicPartition(t, p), at)

    async def _fold_until_swapped(
        self,
        pool: asyncpg.Pool,
        dlq: EventLog,
        consumer: EventConsumer,
        pipeline: BatchPipeline,
        ends: dict[tuple[str, int], int],
        started: float,
    ) -> RebuildReport:
        engine = pipeline.engine
        last_report = 0.0
        while True:
            batch = await consumer.getmany(
                max_records=self.target.batch_size, timeout_ms=self.target.poll_timeout_ms
            )
            self._check(await pipeline.advance(batch))
            caught_up = all(engine.positions[tp] >= end for tp, end in ends.items())
            if caught_up:  # nothing may be in flight past a swap (or a report of the end)
                self._check(await pipeline.settle())
            positions, records, now = engine.positions, pipeline.records, time.monotonic()
            if now - last_report >= self._progress_interval_s or caught_up:
                last_report = now
                self._report(positions, ends, records, now - started, caught_up)
            if not caught_up:
                continue
            if not self._swap:
                return RebuildReport(
                    self.settings.name, records, now - started, positions, False, self._archived
                )
            if await self._try_swap(pool):
                self._report(positions, ends, records, now - started, True, "swapped")
                return RebuildReport(
                    self.settings.name,
                    records,
                    time.monotonic() - started,
                    positions,
                    True,
                    self._archived,
                )
            ends = await _end_offsets(dlq, self.settings.topics)  # the live one is ahead

    def _check(self, settled: BatchResult | None) -> None:
        if settled is not None and not settled.committed:
            raise RebuildError(self.settings.name, "folding", "another process wrote the rebuild")

    def _report(
        self,
        positions: dict[tuple[str, int], int],
        ends: dict[tuple[str, int], int],
        records: int,
        elapsed: float,
        caught_up: bool,
        phase: str | None = None,
    ) -> None:
        if self._on_progress is None:
            return
        done = sum(min(positions.get(tp, 0), end) for tp, end in ends.items())
        total = sum(ends.values())
        self._on_progress(
            RebuildProgress(
                done, total, records, elapsed, phase or ("catching up" if caught_up else "folding")
            )
        )

    async def _try_swap(self, pool: asyncpg.Pool) -> bool:
        """Swap if the rebuild is at or past every live offset; False if it is behind."""
        live, target = self.settings, self.target
        async with pool.acquire() as conn:
            try:
                async with conn.transaction():
                    await conn.execute(f"SET LOCAL lock_timeout = {int(self._lock_timeout_ms)}")
                    rows = await conn.fetch(
                        "SELECT projection, topic, partition, next_offset, generation"
                        " FROM projection_offsets WHERE projection = ANY($1::text[])"
                        " ORDER BY topic, partition, projection FOR UPDATE",
                        [live.name, target.name],
                    )
                    mine = {
                        (r["topic"], r["partition"]): r["next_offset"]
                        for r in rows
                        if r["projection"] == target.name
                    }
                    theirs = {
                        (r["topic"], r["partition"]): r["next_offset"]
                        for r in rows
                        if r["projection"] == live.name
                    }
                    behind = [tp for tp, n in theirs.items() if mine.get(tp, 0) < n]
                    if behind:
                        logger.info(
                            "rebuild of %s: behind the live projection on %s", live.name, behind
                        )
                        return False
                    dropped = await dropped_entities(conn, live, target)
                    if dropped:
                        raise RebuildError(
                            live.name,
                            "swapping",
                            "the rebuilt tables lack row(s) the live ones hold"
                            f" (their history is neither in Kafka nor in the archive):"
                            f" {name_some(dropped)}; the live tables are untouched",
                        )
                    await refuse_drift(conn, live.name, _pairs(live, target))
                    generation = max(
                        (r["generation"] for r in rows if r["projection"] == live.name), default=0
                    )
                    await self._swap_tables(conn)
                    await conn.execute(
                        "DELETE FROM projection_offsets WHERE projection = $1", live.name
                    )
                    await conn.execute(
                        "UPDATE projection_offsets SET projection = $1, generation = $3,"
                        " updated_at = now() WHERE projection = $2",
                        live.name,
                        target.name,
                        generation + 1,
                    )
                    await _merge_dead_letters(conn, live.name, target.name)
                    await conn.execute("SELECT pg_notify($1, $2)", SWAPPED_CHANNEL, live.name)
                    await conn.execute("SELECT pg_notify($1, $2)", OFFSETS_CHANNEL, live.name)
            except asyncpg.LockNotAvailableError:
                logger.info("rebuild of %s: tables busy, retrying the swap", live.name)
                await asyncio.sleep(0.2)
                return False
        logger.info("rebuild of %s: swapped in the rebuilt tables", live.name)
        return True

    async def _swap_tables(self, conn: asyncpg.Connection) -> None:
        for live, copy in _pairs(self.settings, self.target):
            schema, name = _split(live)
            await conn.execute(f"ALTER TABLE {live} RENAME TO {name}{OLD_SUFFIX}")
            await conn.execute(f"ALTER TABLE {copy} RENAME TO {name}")
            await conn.execute(f"DROP TABLE {schema}.{name}{OLD_SUFFIX}")
            # Indexes and constraints were named after the copy: name them after the table.
            for row in await conn.fetch(
                "SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = $2",
                schema,
                name,
            ):
                index: str = row["indexname"]
                if REBUILD_SUFFIX in index:
                    renamed = index.replace(REBUILD_SUFFIX, "", 1)
                    await rename_index(conn, schema, index, renamed)


async def _merge_dead_letters(conn: asyncpg.Connection, live: str, rebuilt: str) -> None:
    """Keep the live projection's dead letters (and their ``replayed_at``), add new ones."""
    columns = (
        'topic, partition, "offset", key, reason, error_class, execution_id, event_type,'
        " raw, dlq_topic, created_at"
    )
    await conn.execute(
        f"INSERT INTO dead_letters (projection, {columns})"
        f" SELECT $1, {columns} FROM dead_letters WHERE projection = $2"
        ' ON CONFLICT (projection, topic, partition, "offset") DO NOTHING',
        live,
        rebuilt,
    )
    await conn.execute("DELETE FROM dead_letters WHERE projection = $1", rebuilt)


async def _end_offsets(log: EventLog, topics: tuple[str, ...]) -> dict[tuple[str, int], int]:
    ends: dict[tuple[str, int], int] = {}
    for topic in topics:
        for partition, offset in (await log.end_offsets(topic)).items():
            ends[(topic, partition)] = offset
    return ends


async def rebuild(
    settings: ProjectionSettings,
    dsn: str,
    bootstrap: str,
    *,
    on_progress: Callable[[RebuildProgress], None] | None = None,
    swap: bool = True,
    security: KafkaSecurity = PLAINTEXT,
    pool: asyncpg.Pool | None = None,
) -> RebuildReport:
    """Rebuild ``settings``' projection from offset zero and swap it in when caught up
    (``pool``: the process's, borrowed; see :class:`Rebuilder`)."""
    rebuilder = Rebuilder(
        settings, dsn, bootstrap, on_progress=on_progress, swap=swap, security=security, pool=pool
    )
    return await rebuilder.run()
