"""The seed's ``check_consistency``: the read model against the fold of the history.

Every ``pipeline_states`` and ``task_states`` row is compared, column by column, with
the row the processor would write for the fold of the execution's events (the same
row builders, ``projections.readmodel``), so a hand-edited status, a lost update or a
processor bug shows up as ``(field, read-model value, fold value)``. Also reported:
executions in the history but not in the read model and vice versa, sequence gaps
(an event missing from the log: the fold refuses everything after it) and the
projection's dead letters that were never replayed.

The tables come from the read model's ``Projection`` declaration, read through
``projections.ReadModelAudit`` (the archive, the entity table and the tables keyed by
it). The history is the archive (``execution_events``, read in one REPEATABLE READ
snapshot with the rows, so a running processor cannot make a false alarm) or the
log itself, read up to the offsets the projection has committed in that snapshot
(from the earliest retained offset: once Kafka's retention has deleted the start of
a history, check against the archive).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg

from orchestrator.debug.folding import (
    FoldedExecution,
    Mismatch,
    SequenceGap,
    compare_execution,
)
from orchestrator.events import DecodeError, EventCodec, EventLog, Position
from orchestrator.projections import ProjectionSettings, ReadModelAudit

_BATCH = 200


@dataclass(frozen=True, slots=True)
class DeadLetterSummary:
    """A dead letter of the projection that was never replayed."""

    id: int
    topic: str
    partition: int
    offset: int
    execution_id: str | None
    event_type: str | None
    error_class: str
    reason: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ConsistencyReport:
    """What ``check_consistency`` found; ``consistent`` when nothing at all."""

    pipeline_id: str | None
    source: str
    projection: str
    executions_checked: int
    events_folded: int
    mismatches: tuple[Mismatch, ...]
    missing_in_read_model: tuple[str, ...]
    missing_in_history: tuple[str, ...]
    sequence_gaps: tuple[SequenceGap, ...]
    dead_letters: tuple[DeadLetterSummary, ...]

    @property
    def consistent(self) -> bool:
        return not self.problems

    @property
    def problems(self) -> int:
        return (
            len(self.mismatches)
            + len(self.missing_in_read_model)
            + len(self.missing_in_history)
            + len(self.sequence_gaps)
            + len(self.dead_letters)
        )


# --- the check against PostgreSQL (and Kafka) ----------------------------------------


class ConsistencyChecker:
    """Checks one projection's read model (``projection``) through ``pool``."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        projection: ProjectionSettings,
        codec: EventCodec,
        *,
        log: EventLog | None = None,
    ) -> None:
        self.pool = pool
        self.projection = projection
        self.tables = projection.tables
        self.codec = codec
        self.log = log

    async def check(
        self, pipeline_id: str | None = None, *, source: str = "archive"
    ) -> ConsistencyReport:
        if source not in ("archive", "log"):
            raise ValueError(f"source must be 'archive' or 'log', not {source!r}")
        if source == "log" and self.log is None:
            raise ValueError("check against the log needs a started EventLog")
        async with (
            self.pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read", readonly=True),
        ):
            audit = ReadModelAudit(conn, self.projection)
            acc = _Accumulator(pipeline_id)
            if source == "archive":
                await self._from_archive(audit, acc)
            else:
                await self._from_log(audit, acc)
            known = await audit.entities(pipeline_id)
            missing_in_history = sorted(k for k in known if k not in acc.seen)
            dead = await self._dead_letters(audit, pipeline_id)
        return ConsistencyReport(
            pipeline_id=pipeline_id,
            source=source,
            projection=self.projection.name,
            executions_checked=acc.checked,
            events_folded=acc.events,
            mismatches=tuple(acc.mismatches),
            missing_in_read_model=tuple(sorted(acc.missing)),
            missing_in_history=tuple(missing_in_history),
            sequence_gaps=tuple(acc.gaps),
            dead_letters=tuple(dead),
        )

    async def _from_archive(self, audit: ReadModelAudit, acc: _Accumulator) -> None:
        pending: list[FoldedExecution] = []
        current: FoldedExecution | None = None
        async for row in audit.archived(acc.pipeline_id):
            eid = row[audit.key]
            if current is None or current.execution_id != eid:
                if current is not None:
                    pending.append(current)
                if len(pending) >= _BATCH:
                    await self._compare(audit, pending, acc)
                    pending = []
                current = FoldedExecution(eid)
            position = Position(row["topic"], row["partition"], row["offset"])
            acc.events += 1
            try:
                envelope = self.codec.decode(bytes(row["raw"]))
            except DecodeError:
                continue  # a poison record: the processor dead-lettered it (reported below)
            current.add(position, envelope)
        if current is not None:
            pending.append(current)
        await self._compare(audit, pending, acc)

    async def _from_log(self, audit: ReadModelAudit, acc: _Accumulator) -> None:
        assert self.log is not None
        topic = self.projection.pipeline_topic
        applied = await audit.applied_offsets(topic)
        folded: dict[str, FoldedExecution] = {}
        for partition, end in sorted(applied.items()):
            async for position, raw in _raw(self.log, topic, partition, end):
                acc.events += 1
                try:
                    envelope = self.codec.decode(raw)
                except DecodeError:
                    continue
                eid = envelope.execution_id
                if eid is None:
                    continue
                item = folded.get(eid)
                if item is None:
                    item = folded[eid] = FoldedExecution(eid)
                item.add(position, envelope)
        wanted = [
            f
            for f in folded.values()
            if acc.pipeline_id is None
            or (f.state is not None and f.state.pipeline_id == acc.pipeline_id)
        ]
        for start in range(0, len(wanted), _BATCH):
            await self._compare(audit, wanted[start : start + _BATCH], acc)

    async def _compare(
        self, audit: ReadModelAudit, batch: list[FoldedExecution], acc: _Accumulator
    ) -> None:
        batch = [
            f
            for f in batch
            if acc.pipeline_id is None or f.state is None or f.state.pipeline_id == acc.pipeline_id
        ]
        stored = await audit.rows([f.execution_id for f in batch])
        pipelines = {k: rows[0] for k, rows in stored[audit.entity_table].items()}
        tasks = stored.get("task_states", {})
        checkpoints = stored.get("checkpoints", {})
        for f in batch:
            acc.seen.add(f.execution_id)
            acc.gaps.extend(f.sequence_gaps())
            if f.state is None:
                continue
            acc.checked += 1
            row = pipelines.get(f.execution_id)
            if row is None:
                acc.missing.add(f.execution_id)
                continue
            acc.mismatches.extend(
                compare_execution(
                    f, row, tasks.get(f.execution_id, []), checkpoints.get(f.execution_id, [])
                )
            )

    async def _dead_letters(
        self, audit: ReadModelAudit, pipeline_id: str | None
    ) -> list[DeadLetterSummary]:
        names = [self.projection.name]
        if self.projection.dead_letter_projection:
            names.append(self.projection.dead_letter_projection)
        rows = await audit.dead_letters(names, pipeline_id)
        return [DeadLetterSummary(**dict(r)) for r in rows]


@dataclass(slots=True)
class _Accumulator:
    pipeline_id: str | None
    checked: int = 0
    events: int = 0
    mismatches: list[Mismatch] = field(default_factory=list)
    missing: set[str] = field(default_factory=set)
    seen: set[str] = field(default_factory=set)
    gaps: list[SequenceGap] = field(default_factory=list)


async def _raw(
    log: EventLog, topic: str, partition: int, end: int
) -> AsyncIterator[tuple[Position, bytes]]:
    if end <= 0:
        return
    async for position, raw in log.read_range_raw(topic, partition, None, end):
        yield position, raw
