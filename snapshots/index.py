"""The snapshot index: one row per snapshot object (PostgreSQL table ``snapshots``).

Restore asks the index for the newest snapshot at or before a target instead of listing
the store; retention plans from it; the snapshotter writes a row after each object. The
object's own header stays the authority: restore re-checks it, so an index row that
is behind its object (a crash between the two writes) costs nothing but a skip.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Protocol

from orchestrator.events import Position


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotRecord:
    """One indexed snapshot object."""

    execution_id: str
    pipeline_id: str
    sequence: int
    epoch: int
    status: str
    object_key: str
    store: str
    position: Position
    size_bytes: int
    raw_size_bytes: int
    created_at: datetime
    occurred_at: datetime | None

    @property
    def log_order(self) -> tuple[int, int]:
        """Where the last folded event sits in the execution's log: (partition, offset)."""
        return (self.position.partition, self.position.offset)


class SnapshotIndex(Protocol):
    """Where snapshot rows are kept and found."""

    async def add(self, records: list[SnapshotRecord]) -> None:
        """Insert or replace rows (keyed by execution_id and sequence)."""
        ...

    async def candidates(
        self, execution_id: str, *, max_sequence: int | None = None, limit: int | None = None
    ) -> list[SnapshotRecord]:
        """The execution's snapshots at or below ``max_sequence``, newest first (at most
        ``limit`` of them)."""
        ...

    async def latest(self, execution_ids: list[str]) -> dict[str, SnapshotRecord]:
        """The newest snapshot of each of these executions that has one."""
        ...

    async def all(self) -> list[SnapshotRecord]:
        """Every row (retention planning)."""
        ...

    async def remove(self, records: list[SnapshotRecord]) -> None:
        """Delete these rows."""
        ...


class MemorySnapshotIndex:
    """The index in a dict: for unit tests, benchmarks and the embedded default.

    Each execution's sequences are kept sorted (one row per sequence, so newest first
    is by sequence), and its newest snapshots are a bisection, not a sort of every row."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, int], SnapshotRecord] = {}
        self._sequences: dict[str, list[int]] = {}

    async def add(self, records: list[SnapshotRecord]) -> None:
        for record in records:
            key = (record.execution_id, record.sequence)
            if key not in self._rows:
                bisect.insort(self._sequences.setdefault(record.execution_id, []), key[1])
            self._rows[key] = replace(record)

    async def candidates(
        self, execution_id: str, *, max_sequence: int | None = None, limit: int | None = None
    ) -> list[SnapshotRecord]:
        sequences = self._sequences.get(execution_id, [])
        end = len(sequences)
        if max_sequence is not None:
            end = bisect.bisect_right(sequences, max_sequence)
        start = 0 if limit is None else max(0, end - limit)
        return [self._rows[(execution_id, seq)] for seq in reversed(sequences[start:end])]

    async def latest(self, execution_ids: list[str]) -> dict[str, SnapshotRecord]:
        found: dict[str, SnapshotRecord] = {}
        for eid in dict.fromkeys(execution_ids):
            sequences = self._sequences.get(eid)
            if sequences:
                found[eid] = self._rows[(eid, sequences[-1])]
        return found

    async def all(self) -> list[SnapshotRecord]:
        return list(self._rows.values())

    async def remove(self, records: list[SnapshotRecord]) -> None:
        for record in records:
            if self._rows.pop((record.execution_id, record.sequence), None) is None:
                continue
            sequences = self._sequences[record.execution_id]
            sequences.pop(bisect.bisect_left(sequences, record.sequence))
            if not sequences:
                del self._sequences[record.execution_id]
