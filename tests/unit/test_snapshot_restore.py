"""Restore from snapshots + archived events always equals the full fold from event 1."""

from __future__ import annotations

import asyncio
import logging
import random
import zlib
from collections import defaultdict
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.events import (
    ArchivedEvent,
    History,
    KeyRing,
    MemoryEventArchive,
    NothingToRestore,
    generate_key,
)
from orchestrator.events.envelope import Position
from orchestrator.events.fold import fold, step
from orchestrator.events.simulate import interleave, simulate_execution
from orchestrator.events.state import ExecutionState
from orchestrator.snapshots import snapshot_history
from orchestrator.snapshots.codec import AesGcmEncryption, SnapshotCodec
from orchestrator.snapshots.index import MemorySnapshotIndex, SnapshotRecord
from orchestrator.snapshots.store import MemorySnapshotStore
from orchestrator.snapshots.writer import PendingSnapshot, SnapshotWriter
from tests.histories import flaky_log

TOPIC = "orchestrator.pipeline.events"


def _log(seed: int, executions: int, partitions: int) -> list[ArchivedEvent]:
    rng = random.Random(seed)
    histories = [
        flaky_log(
            simulate_execution(f"exec_{n}", rng, tasks=rng.randint(1, 8)),
            rng,
            retries=0.15,
            zombies=0.2,
        )
        for n in range(executions)
    ]
    offsets = [0] * partitions
    log = []
    for event in interleave(histories, rng):
        partition = zlib.crc32((event.execution_id or "").encode()) % partitions
        log.append(ArchivedEvent(Position(TOPIC, partition, offsets[partition]), event))
        offsets[partition] += 1
    return log


async def _snapshot_every(
    log: list[ArchivedEvent], n: int, writer: SnapshotWriter, index: MemorySnapshotIndex
) -> int:
    """What the snapshotter does, simply: a snapshot after every n events of an execution."""
    states: dict[str, ExecutionState | None] = {}
    counts: dict[str, int] = defaultdict(int)
    taken = 0
    for event in log:
        eid = event.envelope.execution_id or ""
        states[eid] = step(states.get(eid), event.envelope).state
        counts[eid] += 1
        state = states[eid]
        if state is not None and counts[eid] % n == 0:
            record = await writer.write(
                PendingSnapshot(state, event.position, event.envelope.occurred_at)
            )
            await index.add([record])
            taken += 1
    return taken


def _by_execution(log: list[ArchivedEvent]) -> dict[str, list[ArchivedEvent]]:
    out: dict[str, list[ArchivedEvent]] = defaultdict(list)
    for event in log:
        out[event.envelope.execution_id or ""].append(event)
    return out


def _prefix_at_sequence(events: list[ArchivedEvent], sequence: int) -> ExecutionState | None:
    """Reference: fold the longest prefix whose last_sequence stays <= sequence."""
    state = None
    for event in events:
        nxt = step(state, event.envelope).state
        if nxt is not None and nxt.last_sequence > sequence:
            break
        state = nxt
    return state


def _setup(
    codec: SnapshotCodec | None = None,
) -> tuple[MemorySnapshotStore, MemorySnapshotIndex, SnapshotWriter]:
    store, index = MemorySnapshotStore(), MemorySnapshotIndex()
    return store, index, SnapshotWriter(store, codec or SnapshotCodec())


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    executions=st.integers(1, 4),
    partitions=st.integers(1, 3),
    every=st.integers(1, 12),
    page=st.integers(1, 9),
)
def test_restore_at_every_sequence_equals_the_full_fold(
    seed: int, executions: int, partitions: int, every: int, page: int
) -> None:
    asyncio.run(_check_restore(seed, executions, partitions, every, page))


async def _check_restore(
    seed: int, executions: int, partitions: int, every: int, page: int
) -> None:
    log = _log(seed, executions, partitions)
    store, index, writer = _setup()
    await _snapshot_every(log, every, writer, index)
    restorer = snapshot_history(
        store=store, index=index, archive=MemoryEventArchive(log), codec=writer.codec
    )
    restorer.page_size = page  # archived events are read a page at a time
    for eid, events in _by_execution(log).items():
        full = fold(e.envelope for e in events)
        assert full is not None
        latest = await restorer.latest(eid)
        assert latest.state == full
        assert latest.skipped == ()
        for sequence in range(1, full.last_sequence + 1):
            restored = await restorer.at_sequence(eid, sequence)
            assert restored.state == _prefix_at_sequence(events, sequence), (eid, sequence)
        for ref in full.checkpoints:
            at_cp = await restorer.at_checkpoint(ref.checkpoint_id)
            assert at_cp.state == _prefix_at_sequence(events, ref.sequence)
        for event in events[:: max(1, len(events) // 7)]:
            when = event.envelope.occurred_at + timedelta(microseconds=1)
            prefix = []
            for e in events:
                if e.envelope.occurred_at > when:
                    break
                prefix.append(e.envelope)
            assert (await restorer.at_time(eid, when)).state == fold(prefix)


async def test_restore_starts_from_the_newest_snapshot_and_folds_only_the_tail() -> None:
    log = _log(7, 1, 1)
    store, index, writer = _setup()
    await _snapshot_every(log, 5, writer, index)
    restorer = snapshot_history(
        store=store, index=index, archive=MemoryEventArchive(log), codec=writer.codec
    )
    restored = await restorer.latest("exec_0")
    newest = (await index.candidates("exec_0"))[0]
    assert restored.snapshot_key == store.uri(newest.object_key)
    assert restored.events_folded == len(log) - 1 - newest.position.offset
    assert restored.position == log[-1].position


async def _corrupt_setup(
    seed: int = 3,
) -> tuple[
    list[ArchivedEvent], MemorySnapshotStore, MemorySnapshotIndex, History, list[SnapshotRecord]
]:
    log = _log(seed, 1, 1)
    store, index, writer = _setup()
    taken = await _snapshot_every(log, 2, writer, index)
    assert taken >= 6  # more than restore reads in its first look at the index
    restorer = snapshot_history(
        store=store, index=index, archive=MemoryEventArchive(log), codec=writer.codec
    )
    return log, store, index, restorer, await index.candidates("exec_0")


@pytest.mark.parametrize("damage", ["truncate", "flip_body", "flip_header", "garbage", "delete"])
async def test_a_damaged_snapshot_is_skipped_with_a_warning_naming_it(
    damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    log, store, _, restorer, snapshots = await _corrupt_setup()
    newest = snapshots[0]
    blob = await store.get(newest.object_key)
    if damage == "truncate":
        await store.put(newest.object_key, blob[: len(blob) // 2])
    elif damage == "flip_body":
        await store.put(newest.object_key, blob[:-3] + bytes([blob[-3] ^ 0x40]) + blob[-2:])
    elif damage == "flip_header":
        await store.put(newest.object_key, blob[:20] + bytes([blob[20] ^ 0x01]) + blob[21:])
    elif damage == "garbage":
        await store.put(newest.object_key, b"not a snapshot at all")
    else:
        await store.delete([newest.object_key])
    with caplog.at_level(logging.WARNING, logger="orchestrator.snapshots.restore"):
        restored = await restorer.latest("exec_0")
    assert restored.state == fold(e.envelope for e in log)
    assert restored.skipped == (store.uri(newest.object_key),)
    assert restored.snapshot_key == store.uri(snapshots[1].object_key)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and store.uri(newest.object_key) in warnings[0].getMessage()


async def test_when_every_snapshot_is_damaged_restore_replays_from_the_first_event(
    caplog: pytest.LogCaptureFixture,
) -> None:
    log, store, _, restorer, snapshots = await _corrupt_setup()
    for record in snapshots:
        await store.put(record.object_key, (await store.get(record.object_key))[:-1])
    with caplog.at_level(logging.WARNING, logger="orchestrator.snapshots.restore"):
        restored = await restorer.latest("exec_0")
    assert restored.state == fold(e.envelope for e in log)
    assert restored.snapshot_key is None and restored.events_folded == len(log)
    assert len(restored.skipped) == len(snapshots)
    named = " ".join(r.getMessage() for r in caplog.records)
    assert all(store.uri(r.object_key) in named for r in snapshots)


async def test_a_snapshot_sealed_with_an_unknown_key_is_skipped() -> None:
    log = _log(5, 1, 1)
    ring = KeyRing.parse(f"old:{generate_key()}")
    store, index, writer = _setup(SnapshotCodec(encryption=AesGcmEncryption(ring)))
    await _snapshot_every(log, 4, writer, index)
    other = SnapshotCodec(encryption=AesGcmEncryption(KeyRing.parse(f"new:{generate_key()}")))
    restorer = snapshot_history(
        store=store, index=index, archive=MemoryEventArchive(log), codec=other
    )
    restored = await restorer.latest("exec_0")
    assert restored.state == fold(e.envelope for e in log)
    assert restored.snapshot_key is None and restored.skipped


async def test_a_snapshot_of_another_execution_under_the_key_is_not_used() -> None:
    log = _log(11, 2, 1)
    store, index, writer = _setup()
    await _snapshot_every(log, 3, writer, index)
    a, b = (await index.candidates("exec_0"))[0], (await index.candidates("exec_1"))[0]
    await store.put(a.object_key, await store.get(b.object_key))
    restorer = snapshot_history(
        store=store, index=index, archive=MemoryEventArchive(log), codec=writer.codec
    )
    restored = await restorer.latest("exec_0")
    assert restored.state == fold(e.envelope for e in log if e.envelope.execution_id == "exec_0")
    assert store.uri(a.object_key) in restored.skipped


async def test_unknown_targets_are_a_clear_error() -> None:
    log = _log(1, 1, 1)
    store, index, writer = _setup()
    restorer = snapshot_history(
        store=store, index=index, archive=MemoryEventArchive(log), codec=writer.codec
    )
    with pytest.raises(NothingToRestore, match="exec_404"):
        await restorer.latest("exec_404")
    with pytest.raises(NothingToRestore, match="cp-404"):
        await restorer.at_checkpoint("cp-404")
    before_everything = log[0].envelope.occurred_at - timedelta(days=1)
    with pytest.raises(NothingToRestore):
        await restorer.at_time("exec_0", before_everything)
