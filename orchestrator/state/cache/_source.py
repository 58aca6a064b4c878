"""The read model as the cache's source: waits for positions and loads versioned entries.

Watermarks are read *before* the rows (the processor commits rows and offsets in one
transaction, so the rows read after hold at least what the watermarks say): an entry
never claims to reflect more than it does.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from orchestrator.events import Position
from orchestrator.state.cache._entry import Cached
from orchestrator.state.cache._kinds import EXECUTION, NAMESPACE, Kind, namespace_version
from orchestrator.state.readmodel import PostgresReadModel


class ReadModelSource:
    """Loads from ``read_model``; ``timeout``: the deadline of a wait for positions.

    ``encode_sizes``: measure each loaded value's encoded size (L1 is bounded by it)."""

    def __init__(
        self, read_model: PostgresReadModel, timeout: float, *, encode_sizes: bool = True
    ) -> None:
        self.read_model = read_model
        self.timeout = timeout
        self.encode_sizes = encode_sizes
        self.shared_topic = read_model.settings.shared_topic

    async def wait(self, positions: Sequence[Position]) -> None:
        if not positions:
            return
        marks = await self.read_model.watermarks()
        behind = [p for p in positions if marks.get((p.topic, p.partition), 0) <= p.offset]
        for p in behind:  # ReadModelTimeout names the first one not reached in time
            await self.read_model.wait_for(p, self.timeout)

    async def load(self, kind: Kind[Any], key: str) -> Cached[Any] | None:
        fetched_at = time.time()
        # Without levels an execution's entry is never stored: no watermarks needed.
        cached = self.encode_sizes or kind.name == NAMESPACE.name
        marks = await self.read_model.watermarks() if cached else {}
        if kind.name == EXECUTION.name:
            found = await self.read_model.load_execution_entry(key)
            if found is None:
                return None
            state, last = found
            version = -1 if last is None else last.offset
            reflects: tuple[Position, ...] = () if last is None else (last,)
            value: Any = state
        elif kind.name == NAMESPACE.name:
            value = await self.read_model.load_namespace(key)
            version = namespace_version(value)
            reflects = tuple(
                Position(t, p, o - 1) for (t, p), o in marks.items() if t == self.shared_topic and o
            )
        else:
            raise ValueError(f"no source for cached kind {kind.name!r}")
        size = len(kind.encode(value)) if self.encode_sizes else 0
        return Cached(value, version, marks, reflects, fetched_at, size)
