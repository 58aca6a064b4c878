"""One processor's batch loop body, shared by the group member and the rebuild.

:class:`BatchEngine` owns what a processor knows about its partitions: the fence it
expects in each offset row and a cache of folded states. The cache is a speed-up
only and never outlives the fence that made it valid: entries of a partition are
dropped when the partition is revoked or claimed, and when a write is fenced off.

A batch goes through two steps. :meth:`BatchEngine.stage` decodes it, reads the
states it touches, folds it and builds its rows: CPU, plus reads outside any
transaction. :meth:`BatchEngine.commit` writes it in one fenced transaction. The
group member overlaps them (it stages batch N+1 while N is written; see
``projections.processor``): N+1 is staged *ahead* on top of N's folded states, and is
thrown away unless N commits exactly as staged. Reading states outside the
transaction is safe because of the fence: a write by anyone else to a partition
moves its offset row, so a batch folded on states read before that write is
refused at commit time.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import asyncpg

from orchestrator.events import (
    PIPELINE_MACHINE,
    DecodedRecord,
    EventCodecLike,
    RawRecord,
    decode_records,
    enabled,
    record_applied,
)
from orchestrator.projections import _tracing
from orchestrator.projections._batch import TP, RecordFailed
from orchestrator.projections._collector import collector_paused
from orchestrator.projections.deadletters import DeadLetterSink
from orchestrator.projections.errors import ProcessorFailed
from orchestrator.projections.offsets import Fence, PostgresOffsets
from orchestrator.projections.projection import Folded
from orchestrator.projections.settings import ProjectionSettings
from orchestrator.projections.store import PreparedWrite, ReadModelStore

logger = logging.getLogger(__name__)

_T = TypeVar("_T")
_FINISHED = PIPELINE_MACHINE.terminal
"""Executions in these statuses are not cached: the cache holds live ones only, so a
processor's memory follows the executions in flight, not the history folded."""
_THREAD_FROM = 500
"""Batches of at least this many records are staged in a worker thread (see ``_cpu``)."""

Held = tuple[TP | None, Any]
"""A state the engine holds between batches: the partition it was read from, and it."""


@dataclass(slots=True)
class BatchResult:
    """What became of a batch: committed ``changes``, or fenced off.

    ``seek`` holds where to read each partition of the batch from again when the
    write was fenced off (the stored offsets; nothing of the batch was written).
    """

    changes: Folded | None
    seek: dict[TP, int] = field(default_factory=dict)
    records: int = 0
    as_staged: bool = True
    """False when the rows written differ from the staged ones (a value PostgreSQL
    refused was split out): a batch staged ahead on top of this one is stale."""

    @property
    def committed(self) -> bool:
        return self.changes is not None

    @property
    def clean(self) -> bool:
        """Committed exactly as staged: a batch staged ahead on top of it may follow."""
        return self.changes is not None and self.as_staged


@dataclass(slots=True)
class StagedBatch:
    """A batch folded into rows, not yet written: what :meth:`BatchEngine.commit` takes."""

    owned: list[RawRecord]
    changes: Folded
    prepared: PreparedWrite
    tps: list[TP]
    states: dict[Hashable, Held] = field(default_factory=dict)
    """The states the batch leaves, by key: the base of a batch staged on top of it."""
    ahead: StagedBatch | None = None
    """The uncommitted batch this one was folded on top of (until this one commits)."""
    result: BatchResult | None = None
    """What :meth:`BatchEngine.commit` made of it, once it ran."""
    traced_ns: int | None = None
    """When staging began, if tracing is on (see ``projections._tracing``)."""


def _finished(value: Any) -> bool:
    """A finished execution's entry (a read model whose states carry a status)."""
    return getattr(getattr(value, "state", None), "status", None) in _FINISHED


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
        self.offsets = PostgresOffsets(settings.name)
        self._pool = pool
        self._codec = codec
        self._sink = sink
        self._expected: dict[TP, Fence] = {}
        self._fold = self.store.projection.fold
        self._cache: OrderedDict[Hashable, Held] = OrderedDict()

    @property
    def positions(self) -> dict[TP, int]:
        """The next offset of each owned partition, as committed to PostgreSQL."""
        return {tp: fence[0] for tp, fence in self._expected.items()}

    async def claim(self, tps: Iterable[TP]) -> dict[TP, int]:
        """Take partitions over: read (or create) their offset rows; return where to seek."""
        tps = list(tps)
        self._drop_cache(set(tps))
        async with self._pool.acquire() as conn:
            stored = await self.offsets.claim(conn, tps)
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
        for key in [key for key, (tp, _) in self._cache.items() if tp in tps]:
            del self._cache[key]

    def _owned(
        self, records: Iterable[RawRecord], ahead: StagedBatch | None = None
    ) -> list[RawRecord]:
        """Records of owned partitions at or after the expected offset (a fetch from
        before a seek or a revoke may still hand over older ones); after ``ahead``'s
        offsets when staging on top of it."""
        expected = self._expected
        after = {} if ahead is None else ahead.changes.next_offsets
        out = []
        for r in records:
            tp = (r.position.topic, r.position.partition)
            fence = expected.get(tp)
            if fence is not None and r.position.offset >= after.get(tp, fence[0]):
                out.append(r)
        return out

    async def process(self, records: Iterable[RawRecord]) -> BatchResult:
        """Stage and commit one batch; see :class:`BatchResult`."""
        owned = self._owned(records)
        if not owned:
            return BatchResult(None, {}, 0)
        return await self._process(owned, {})

    async def stage(
        self, records: Iterable[RawRecord], *, ahead: StagedBatch | None = None
    ) -> StagedBatch | None:
        """Fold a batch into rows without writing them (``None``: nothing of it is ours).

        With ``ahead`` (a batch staged but not yet committed) the batch is folded on
        top of ahead's states and offsets; commit it after ``ahead``. If ``ahead`` did
        not commit exactly as staged, :meth:`commit` writes nothing of it and answers
        "not committed" with the stored offsets to read its partitions from again."""
        owned = self._owned(records, ahead)
        if not owned:
            return None
        staged = await self._stage(owned, {}, ahead)
        staged.ahead = ahead
        return staged

    async def commit(self, staged: StagedBatch) -> BatchResult:
        """Write a staged batch in one fenced transaction.

        If PostgreSQL refuses the batch's data (``DataError``: a value ``jsonb`` or
        ``text`` cannot hold), the batch is split in halves until the record at fault
        is alone; that record is then refused like a poison event (dead letter) and
        everything else is written (``as_staged`` is then False): one bad value never
        wedges a partition.
        """
        ahead, staged.ahead = staged.ahead, None
        if ahead is not None and (ahead.result is None or not ahead.result.clean):
            if ahead.result is None:
                raise RuntimeError("a batch staged ahead was committed before the one under it")
            return BatchResult(None, {tp: self._expected[tp][0] for tp in staged.tps}, 0, False)
        try:
            staged.result = await self._write(staged)
        except asyncpg.DataError as exc:
            staged.result = await self._isolate(staged.owned, {}, exc)
            staged.result.as_staged = False
        return staged.result

    async def _process(
        self, owned: list[RawRecord], refused: dict[tuple[str, int, int], str]
    ) -> BatchResult:
        staged = await self._stage(owned, refused, None)
        try:
            return await self._write(staged)
        except asyncpg.DataError as exc:
            return await self._isolate(owned, refused, exc)

    async def _isolate(
        self,
        owned: list[RawRecord],
        refused: dict[tuple[str, int, int], str],
        exc: asyncpg.DataError,
    ) -> BatchResult:
        """``owned`` failed with ``exc``: refuse the record at fault, write the others."""
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

    async def _stage(
        self,
        owned: list[RawRecord],
        refused: dict[tuple[str, int, int], str],
        ahead: StagedBatch | None,
    ) -> StagedBatch:
        traced_ns = time.time_ns() if enabled() else None
        with collector_paused():
            decoded, keys = await self._cpu(self._decode, owned)
            pending = {} if ahead is None else ahead.states
            states: dict[Hashable, Any] = {}
            missing = []
            for key, tp in keys.items():
                held = pending.get(key)
                if held is None and tp is not None:
                    held = self._cache.get(key)
                if held is not None and held[0] == tp:
                    states[key] = held[1]
                else:
                    missing.append(key)
            if missing:
                try:
                    async with self._pool.acquire() as conn:
                        loaded = await self.store.load(conn, missing)
                except (asyncpg.PostgresError, OSError) as exc:
                    raise self._failed(owned, exc) from exc
                for key in missing:
                    states[key] = loaded.get(key)
            try:
                changes, prepared = await self._cpu(self._apply, decoded, states, refused or None)
            except RecordFailed as exc:
                raise ProcessorFailed(
                    self.settings.name,
                    f"{type(exc.__cause__).__name__}: {exc.__cause__}",
                    topic=exc.topic,
                    partition=exc.partition,
                    offset=exc.offset,
                    execution_id=exc.execution_id,
                ) from exc
        held_states = {key: (keys.get(key), state) for key, state in changes.states().items()}
        tps = sorted({(r.position.topic, r.position.partition) for r in owned})
        return StagedBatch(owned, changes, prepared, tps, held_states, traced_ns=traced_ns)

    async def _cpu(self, fn: Callable[..., _T], *args: Any) -> _T:
        """Run a pure CPU step of staging, in a worker thread when the batch is big.

        Not for parallelism (the GIL allows none) but for fairness: the interpreter
        hands the GIL back to the event loop every few milliseconds, so the batch being
        written meanwhile gets each PostgreSQL answer promptly instead of after the
        whole fold. Small batches (steady state) stay inline: a thread hop costs more
        than they do. The steps touch no shared mutable state of the engine.
        """
        if len(args[0]) < _THREAD_FROM:
            return fn(*args)
        return await asyncio.to_thread(fn, *args)

    def _decode(
        self, owned: list[RawRecord]
    ) -> tuple[list[DecodedRecord], dict[Hashable, TP | None]]:
        decoded = decode_records(self._codec, owned)
        return decoded, self._fold.keys(decoded)

    def _apply(
        self,
        decoded: list[DecodedRecord],
        states: dict[Hashable, Any],
        refused: dict[tuple[str, int, int], str] | None,
    ) -> tuple[Folded, PreparedWrite]:
        changes = self._fold.fold(decoded, states, refused)
        return changes, self.store.prepare(changes)

    async def _write(self, staged: StagedBatch) -> BatchResult:
        tps, changes = staged.tps, staged.changes
        traced = []
        if staged.traced_ns is not None:
            archive = self.store.names.get("execution_events")
            for table, _, rows in staged.prepared.copies:
                if table == archive:
                    traced = _tracing.traced_applied(staged.owned, rows)
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                expected = {tp: self._expected.get(tp, (-1, -1)) for tp in tps}
                stale, stored = await self.offsets.check(conn, expected)
                if stale:
                    raise _Fenced(stale, stored)
                await self._sink.publish(conn, changes.dead_letters)
                await self.store.write_prepared(conn, staged.prepared)
                if traced:
                    await _tracing.write_traces(conn, _tracing.trace_rows(traced))
        except _Fenced as fenced:
            return await self._fenced_off(tps, fenced)
        except asyncpg.DataError:
            raise  # the caller isolates the record at fault
        except (asyncpg.PostgresError, OSError) as exc:
            raise self._failed(staged.owned, exc) from exc
        for tp, offset in changes.next_offsets.items():
            self._expected[tp] = (offset, self._expected[tp][1])
        self._remember(staged.states)
        record_applied(
            self.settings.name, [r.timestamp_ms for r in staged.owned], len(changes.dead_letters)
        )
        if staged.traced_ns is not None:
            _tracing.batch_spans(staged.owned, traced, staged.traced_ns)
        return BatchResult(changes, {}, len(staged.owned))

    def _remember(self, states: dict[Hashable, Held]) -> None:
        """Keep the states this batch wrote for the next one (finished executions left out)."""
        cache = self._cache
        for key, held in states.items():
            if held[0] is None:
                continue  # not cacheable (see ReadModelFold.keys)
            if _finished(held[1]):  # rarely hears again: memory follows executions in flight
                cache.pop(key, None)
                continue
            cache[key] = held
            cache.move_to_end(key)
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
                fenced.stored.update(await self.offsets.claim(conn, missing))
        seek: dict[TP, int] = {}
        for tp in tps:
            if tp in fenced.stale:
                self._expected[tp] = fenced.stored[tp]
            seek[tp] = self._expected[tp][0]
        return BatchResult(None, seek, 0)
