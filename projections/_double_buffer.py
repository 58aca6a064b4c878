"""Two batches in hand: one being written while the next is folded on top of it.

A processor's time per batch is this process's work (decode, fold, rows) plus
PostgreSQL's (the write). Done one after the other, each waits for the other; here
batch N's write runs as a task while batch N+1 is staged ahead on N's states
(:meth:`projections._engine.BatchEngine.stage`), so both run at once. N+1 is handed
to the writer only if N committed exactly as staged; otherwise it is dropped and
every partition is read again from its stored offset. Used by the group member
(``projections.processor``) and the rebuild (``projections.rebuild``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Protocol

from orchestrator.events import RawRecord, TopicPartition
from orchestrator.projections._engine import BatchEngine, BatchResult, StagedBatch

logger = logging.getLogger(__name__)


class Seeker(Protocol):
    """What the pipeline rewinds: an ``EventConsumer`` or a ``GroupMember``."""

    def assignment(self) -> frozenset[TopicPartition]: ...

    def seek(self, tp: TopicPartition, offset: int) -> None: ...


class BatchPipeline:
    """Stages each batch ahead of the one being written; counts what was committed."""

    def __init__(self, engine: BatchEngine, consumer: Seeker) -> None:
        self.engine = engine
        self._consumer = consumer
        self._writing: tuple[StagedBatch, asyncio.Task[BatchResult]] | None = None
        self.batches = 0
        self.records = 0

    async def advance(self, records: list[RawRecord]) -> BatchResult | None:
        """Stage ``records`` ahead of the batch being written, wait for that one, then
        start writing these. Returns the result of the batch that was being written
        (``None`` if there was none); not committed means it was fenced off."""
        ahead = None if self._writing is None else self._writing[0]
        staged = await self.engine.stage(records, ahead=ahead) if records else None
        settled = await self.settle()
        if settled is not None and not settled.clean:
            staged = None  # folded on rows that were not written as staged (see commit)
        if staged is not None:
            self._writing = (staged, asyncio.create_task(self._commit(staged)))
        return settled

    async def settle(self) -> BatchResult | None:
        """Wait for the batch being written (if any); rewind the consumer unless it
        committed exactly as staged. A failed write raises here."""
        if self._writing is None:
            return None
        _, task = self._writing
        try:
            result = await task
        finally:
            self._writing = None
        if result.committed:
            self.batches += 1
            self.records += result.records
        if not result.clean:
            self._rewind()
        return result

    async def abandon(self) -> None:
        """After an error: let the batch being written finish (or fail) quietly."""
        if self._writing is None:
            return
        _, task = self._writing
        self._writing = None
        with contextlib.suppress(Exception):
            await task

    async def _commit(self, staged: StagedBatch) -> BatchResult:
        started = time.perf_counter()
        result = await self.engine.commit(staged)
        logger.debug(
            "projection %s: %d record(s) written in %.1f ms (%s)",
            self.engine.settings.name,
            len(staged.owned),
            (time.perf_counter() - started) * 1000,
            "committed" if result.committed else "not written",
        )
        return result

    def _rewind(self) -> None:
        """Read every assigned partition again from its stored offset (drops what was
        fetched or staged past it)."""
        positions = self.engine.positions
        for tp in self._consumer.assignment():
            offset = positions.get((tp.topic, tp.partition))
            if offset is not None:
                self._consumer.seek(tp, offset)
