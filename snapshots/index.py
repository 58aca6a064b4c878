"""The snapshot index: one row per snapshot object (PostgreSQL table ``snapshots``).

Restore asks the index for the newest snapshot at or before a target instead of listing
the store; retention plans from it; the snapshotter writes a row after each object. The
object's own header stays the authority: restore re-checks it, so an index row that
is behind its object (a crash between the two writes) costs nothing but a skip.
"""

from __future__ import annotations

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


def _newest_first(records: list[SnapshotRecord]) -> list[SnapshotRecord]:
    return sorted(records, key=lambda r: (r.sequence, r.log_order), reverse=True)


class MemorySnapshotIndex:
    """The index in a dict: for unit tests, benchmarks and the embedded default."""

    def __init__(self) -> None:
        self._rows: dict[tuple[str, int], SnapshotRecord] = {}

    async def add(self, records: list[SnapshotRecord]) -> None:
        for record in records:
            self._rows[(record.execution_id, record.sequence)] = replace(record)

    async def candidates(
        self, execution_id: str, *, max_sequence: int | None = None, limit: int | None = None
    ) -> list[SnapshotRecord]:
        found = _newest_first(
            [
                r
                for (eid, seq), r in self._rows.items()
                if eid == execution_id and (max_sequence is None or seq <= max_sequence)
            ]
        )
        return found if limit is None else found[:limit]

    async def latest(self, execution_ids: list[str]) -> dict[str, SnapshotRecord]:
        wanted = set(execution_ids)
        found: dict[str, SnapshotRecord] = {}
        for record in _newest_first([r for r in self._rows.values() if r.execution_id in wanted]):
            found.setdefault(record.execution_id, record)
        return found

    async def all(self) -> list[SnapshotRecord]:
        return list(self._rows.values())

    async def remove(self, records: list[SnapshotRecord]) -> None:
        for record in records:
            self._rows.pop((record.execution_id, record.sequence), None)
