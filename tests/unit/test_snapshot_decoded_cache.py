"""Restores reuse a decoded snapshot only while its object's bytes are unchanged."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from orchestrator.events import ArchivedEvent, MemoryEventArchive, Position, simulate_execution
from orchestrator.events.fold import fold
from orchestrator.snapshots import (
    FilesystemSnapshotStore,
    MemorySnapshotIndex,
    MemorySnapshotStore,
    PendingSnapshot,
    SnapshotCodec,
    SnapshotWriter,
    snapshot_history,
)
from orchestrator.snapshots._decoded import DecodedCache

TOPIC = "orchestrator.pipeline.events"


@pytest.mark.parametrize("backend", ["memory", "filesystem"])
async def test_a_rewritten_or_deleted_snapshot_is_never_served_from_the_cache(
    backend: str, tmp_path: Path
) -> None:
    events = simulate_execution("e1", random.Random(3), tasks=4)
    archived = [ArchivedEvent(Position(TOPIC, 0, i), e) for i, e in enumerate(events)]
    store: MemorySnapshotStore | FilesystemSnapshotStore = (
        MemorySnapshotStore() if backend == "memory" else FilesystemSnapshotStore(tmp_path)
    )
    index, codec = MemorySnapshotIndex(), SnapshotCodec()
    middle = len(events) // 2
    state = fold(events[:middle])
    record = await SnapshotWriter(store, codec).write(
        PendingSnapshot(state, archived[middle - 1].position, events[middle - 1].occurred_at)
    )
    await index.add([record])
    history = snapshot_history(
        store=store, index=index, archive=MemoryEventArchive(archived), codec=codec
    )
    for _ in range(2):  # decoded, then served from the cache
        restored = await history.latest("e1")
        assert restored.state == fold(events) and restored.snapshot_key is not None
        assert restored.skipped == ()
    data = await store.get(record.object_key)
    await store.put(record.object_key, data[:-1] + bytes([data[-1] ^ 1]))
    restored = await history.latest("e1")
    assert restored.state == fold(events)
    assert restored.snapshot_key is None and len(restored.skipped) == 1
    await store.delete([record.object_key])
    restored = await history.latest("e1")
    assert restored.state == fold(events) and restored.snapshot_key is None


def test_the_cache_holds_at_most_its_byte_budget() -> None:
    cache: DecodedCache[int] = DecodedCache(budget=10)
    for i in range(5):
        cache.put(f"k{i}", bytes(4), i, 4)
    assert cache.get("k4", bytes(4)) == 4 and cache.get("k3", bytes(4)) == 3
    assert cache.get("k0", bytes(4)) is None  # evicted, oldest first
    assert cache.get("k4", bytes(5)) is None  # other bytes: not served, and dropped
    assert cache.get("k4", bytes(4)) is None
