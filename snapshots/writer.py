"""Writing snapshots: encode, put under the deterministic key, describe for the index.

Objects are written before their index rows, and the rows before the snapshotter's
offsets move: a crash in between leaves an object without a row (overwritten by the
next write of the same key) or a row behind its object (restore re-checks headers),
never a row pointing at nothing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from orchestrator.events import ExecutionState, Position, context_of, from_fields, span
from orchestrator.snapshots.codec import SnapshotCodec
from orchestrator.snapshots.index import SnapshotRecord
from orchestrator.snapshots.store import KeyLayout, SnapshotStore


@dataclass(frozen=True, slots=True)
class PendingSnapshot:
    """A state to snapshot: the last event folded into it and when that event occurred."""

    state: ExecutionState
    position: Position
    occurred_at: datetime | None


@dataclass(frozen=True, slots=True)
class SnapshotWriter:
    """Encodes states and puts them in the store, ``concurrency`` puts at a time."""

    store: SnapshotStore
    codec: SnapshotCodec = field(default_factory=SnapshotCodec)
    layout: KeyLayout = field(default_factory=KeyLayout)
    concurrency: int = 8

    def key_for(self, state: ExecutionState) -> str:
        return self.layout.key(
            state.pipeline_id, state.execution_id, state.created_at, state.last_sequence
        )

    async def write(
        self, pending: PendingSnapshot, traceparent: str | None = None
    ) -> SnapshotRecord:
        """Write one snapshot object; return its index row (not yet indexed).

        ``traceparent``: the trace of the write the snapshot ends with (its span's parent).
        """
        with span(
            "orchestrator.snapshot_write",
            parent=None if traceparent is None else context_of(traceparent),
            execution_id=pending.state.execution_id,
            sequence=pending.state.last_sequence,
        ):
            encoded = self.codec.encode(
                pending.state, pending.position, occurred_at=pending.occurred_at
            )
            key = self.key_for(pending.state)
            await self.store.put(key, encoded.data)
        header = encoded.header
        return from_fields(  # identity, position and times: the header's
            SnapshotRecord,
            header,
            object_key=key,
            store=self.store.name,
            size_bytes=encoded.size,
            raw_size_bytes=header.raw_size,
        )

    async def write_many(
        self,
        pending: Sequence[PendingSnapshot],
        traceparents: Mapping[Position, str] | None = None,
    ) -> list[SnapshotRecord]:
        """Write several objects concurrently; the first failure raises once all have ended.

        ``traceparents``: the trace context of records by position (tracing on)."""
        gate = asyncio.Semaphore(max(1, self.concurrency))
        parents = traceparents or {}

        async def one(item: PendingSnapshot) -> SnapshotRecord:
            async with gate:
                return await self.write(item, parents.get(item.position))

        results = await asyncio.gather(*(one(item) for item in pending), return_exceptions=True)
        for result in results:
            if isinstance(result, BaseException):
                raise result
        return [r for r in results if isinstance(r, SnapshotRecord)]
