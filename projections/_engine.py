"""One processor's batch loop body, shared by the group member and the rebuild.

:class:`BatchEngine` owns what a processor knows about its partitions: the fence it
expects in each offset row and a cache of folded states. The cache is a speed-up
only and never outlives the fence that made it valid: entries of a partition are
dropped when the partition is revoked or claimed, and when a write is fenced off.
"""

from __future__ import annotations

import gc
import logging
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import asyncpg

from events.consumer import RawRecord, decode_records
from events.log import EventCodecLike
from projections._batch import (
    TP,
    BatchChanges,
    ExecutionEntry,
    RecordFailed,
    fold_batch,
    touched_keys,
)
from projections.deadletters import DeadLetterSink
from projections.errors import ProcessorFailed
from projections.settings import ProjectionSettings
from projections.store import Fence, ReadModelStore

logger = logging.getLogger(__name__)


@dataclass(slots=True)
class BatchResult:
    """What became of a batch: committed ``changes``, or fenced off.

    ``seek`` holds where to read each partition of the batch from again when the
    write was fenced off (the stored offsets; nothing of the batch was written).
    """

    changes: BatchChanges | None
    seek: dict[TP, int] = field(default_factory=dict)
    records: int = 0

    @property
    def committed(self) -> bool:
        return self.changes is not None


@contextmanager
def collector_paused() -> Iterator[None]:
    """No cyclic garbage collection while a batch is fetched, folded and written.

    A batch allocates hundreds of thousands of objects that live until it is written
    (Kafka records, envelopes, states, rows), so the collector would run every few
    hundred allocations and traverse them again and again: about a fifth of a
    processor's time. Paused, it runs once per batch, right after. The pause spans
    ``await``s, so other tasks of the process run with it too, for one batch at most;
    a nested pause (the processor's loop around the engine's) leaves it to the outer one.
    Reference counting frees everything acyclic as usual, so memory does not grow.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


class _Fenced(Exception):
    def __init__(self, stale: list[TP], stored: dict[TP, Fence]) -> None:
        self.stale = stale
        self.stored = stored


class BatchEngine:
    """Folds batches into the read model of one projection, fenced and exactly once."""

    def __init__(
        self,
        settings: ProjectionSettings,
        pool: asyncpg.Pool,
        codec: EventCodecLike,
        sink: DeadLetterSink,
    ) -> None:
        self.settings = settings
        self.store = ReadModelStore(settings)
        self._pool = pool
        self._codec = codec
        self._sink = sink
        self._expected: dict[TP, Fence] = {}
        self._cache: OrderedDict[str, ExecutionEntry] = OrderedDict()

    @property
    def positions(self) -> dict[TP, int]:
        """The next offset of each owned partition, as committed to PostgreSQL."""
        return {tp: fence[0] for tp, fence in self._expected.items()}

    async def claim(self, tps: Iterable[TP]) -> dict[TP, int]:
        """Take partitions over: read (or create) their offset rows; return where to seek."""
        tps = list(tps)
        self._drop_cache(set(tps))
        async with self._pool.acquire() as conn:
            stored = await self.store.claim_offsets(conn, tps)
        self._expected.update(stored)
        return {tp: fence[0] for tp, fence in stored.items()}

    def release(self, tps: Iterable[TP]) -> None:
        """Forget partitions taken away: no later batch writes them."""
        gone = set(tps)
        for tp in gone:
            self._expected.pop(tp, None)
        self._drop_cache(gone)

    def _drop_cache(self, tps: set[TP]) -> None:
        if not tps or not self._cache:
            return
        for eid in [eid for eid, e in self._cache.items() if e.tp in tps]:
            del self._cache[eid]

    def _owned(self, records: Iterable[RawRecord]) -> list[RawRecord]:
        """Records of owned partitions at or after the expected offset (a fetch from
        before a seek or a revoke may still hand over older ones)."""
        expected = self._expected
        out = []
        for r in records:
            fence = expected.get((r.position.topic, r.position.partition))
            if fence is not None and r.position.offset >= fence[0]:
                out.append(r)
        return out

    async def process(self, records: Iterable[RawRecord]) -> BatchResult:
        """Fold and write one batch in one transaction; see :class:`BatchResult`.

        If PostgreSQL refuses the batch's data (``DataError``: a value ``jsonb`` or
        ``text`` cannot hold), the batch is split in halves until the record at fault
        is alone; that record is then refused like a poison event (dead letter) and
        everything else is written: one bad value never wedges a partition.
        """
        owned = self._owned(records)
        if not owned:
            return BatchResult(None, {}, 0)
        return await self._process(owned, {})

    async def _process(
        self, owned: list[RawRecord], refused: dict[tuple[str, int, int], str]
    ) -> BatchResult:
        try:
            return await self._process_once(owned, refused)
        except asyncpg.DataError as exc:
            if len(owned) == 1:
                pos = owned[0].position
                key = (pos.topic, pos.partition, pos.offset)
                if key in refused:
                    raise self._failed(owned, exc) from exc
                reason = f"not storable in PostgreSQL: {type(exc).__name__}: {exc}"
                logger.warning("projection %s: %s[%s]@%s %s", self.settings.name, *key, reason)
                return await self._process(owned, {**refused, key: reason})
        middle = len(owned) // 2
        first = await self._process(owned[:middle], refused)
        if not first.committed:
            return self._seek_all(owned, first)
        second = await self._process(owned[middle:], refused)
        if not second.committed:
            return self._seek_all(owned, second)
        return BatchResult(second.changes, {}, first.records + second.records)

    def _seek_all(self, owned: list[RawRecord], result: BatchResult) -> BatchResult:
        """A part of a split batch was fenced off: re-read every partition of the batch."""
        seek = {(r.position.topic, r.position.partition): 0 for r in owned}
        for tp in seek:
            seek[tp] = result.seek.get(tp, self._expected[tp][0])
        return BatchResult(None, seek, 0)

    def _failed(self, owned: list[RawRecord], exc: BaseException) -> ProcessorFailed:
        first = owned[0].position
        tps = {(r.position.topic, r.position.partition) for r in owned}
        return ProcessorFailed(
            self.settings.name,
            f"writing a batch of {len(owned)} record(s) from "
            f"{len(tps)} partition(s): {type(exc).__name__}: {exc}",
            topic=first.topic,
            partition=first.partition,
            offset=first.offset,
        )

    async def _process_once(
        self, owned: list[RawRecord], refused: dict[tuple[str, int, int], str]
    ) -> BatchResult:
        with collector_paused():
            return await self._process_paused(owned, refused)

    async def _process_paused(
        self, owned: list[RawRecord], refused: dict[tuple[str, int, int], str]
    ) -> BatchResult:
        decoded = decode_records(self._codec, owned)
        executions, variables = touched_keys(decoded)
        tps = sorted({(r.position.topic, r.position.partition) for r in owned})
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                stored = await self.store.lock_offsets(conn, tps)
                stale = [tp for tp in tps if stored.get(tp) != self._expected.get(tp)]
                if stale:
                    raise _Fenced(stale, stored)
                states: dict[str, ExecutionEntry | None] = {}
                missing = []
                for eid, tp in executions.items():
                    entry = self._cache.get(eid)
                    if entry is not None and entry.tp == tp:
                        states[eid] = entry
                    else:
                        missing.append(eid)
                loaded = await self.store.load_executions(conn, missing)
                for eid in missing:
                    states[eid] = loaded.get(eid)
                shared = await self.store.load_variables(conn, variables)
                changes = fold_batch(
                    decoded, states, {k: shared.get(k) for k in variables}, refused or None
                )
                prepared = self.store.prepare(changes)
                await self._sink.publish(conn, changes.dead_letters)
                await self.store.write_prepared(conn, prepared)
        except _Fenced as fenced:
            return await self._fenced_off(tps, fenced)
        except RecordFailed as exc:
            raise ProcessorFailed(
                self.settings.name,
                f"{type(exc.__cause__).__name__}: {exc.__cause__}",
                topic=exc.topic,
                partition=exc.partition,
                offset=exc.offset,
                execution_id=exc.execution_id,
            ) from exc
        except asyncpg.DataError:
            raise  # the caller isolates the record at fault
        except (asyncpg.PostgresError, OSError) as exc:
            raise self._failed(owned, exc) from exc
        for tp, offset in changes.next_offsets.items():
            self._expected[tp] = (offset, self._expected[tp][1])
        self._remember(changes)
        return BatchResult(changes, {}, len(owned))

    def _remember(self, changes: BatchChanges) -> None:
        cache = self._cache
        for eid, entry in changes.executions.items():
            cache[eid] = entry
            cache.move_to_end(eid)
        while len(cache) > self.settings.max_cached_executions:
            cache.popitem(last=False)

    async def _fenced_off(self, tps: list[TP], fenced: _Fenced) -> BatchResult:
        """Someone else wrote: re-read the stale partitions, re-seek all of the batch."""
        logger.warning(
            "projection %s: offsets of %s changed under us (another member or a rebuild "
            "swap); batch rolled back, re-reading from the stored offsets",
            self.settings.name,
            ", ".join(f"{t}[{p}]" for t, p in fenced.stale),
        )
        self._drop_cache(set(fenced.stale))
        missing = [tp for tp in fenced.stale if tp not in fenced.stored]
        if missing:  # the row went away: start it again as a claim would
            async with self._pool.acquire() as conn:
                fenced.stored.update(await self.store.claim_offsets(conn, missing))
        seek: dict[TP, int] = {}
        for tp in tps:
            if tp in fenced.stale:
                self._expected[tp] = fenced.stored[tp]
            seek[tp] = self._expected[tp][0]
        return BatchResult(None, seek, 0)
