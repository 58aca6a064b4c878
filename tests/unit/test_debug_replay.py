"""Replay semantics without services: targets, --last, --since, and snapshot bases.

The replayer reads an in-memory history here (the same port the PostgreSQL archive
implements); every answer must equal the pure fold of a log prefix, whether it
starts from the first event or from a snapshot, and a damaged snapshot costs time,
never a wrong state.
"""

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from orchestrator.debug import HistoryNotFound, Replayer, Target
from orchestrator.events import ArchivedEvent, MemoryEventArchive
from orchestrator.events.envelope import Envelope, Position
from orchestrator.events.fold import step
from orchestrator.events.simulate import interleave, simulate_execution
from orchestrator.events.state import ExecutionState
from orchestrator.snapshots import (
    MemorySnapshotIndex,
    MemorySnapshotStore,
    SnapshotBaseReader,
    SnapshotCodec,
    SnapshotWriter,
)
from orchestrator.snapshots.writer import PendingSnapshot
from orchestrator.state.errors import CheckpointNotFound
from tests.histories import fold_to_sequence

TOPIC = "orchestrator.pipeline.events"


class MemoryHistory(MemoryEventArchive):
    """The ``EventArchive`` port over lists; counts what was read."""

    @property
    def read(self) -> int:
        return self.rows_read


def _histories(seed: int = 7) -> tuple[list[ArchivedEvent], dict[str, list[ArchivedEvent]]]:
    rng = random.Random(seed)
    runs = [simulate_execution(f"exec_{i}", rng, tasks=12) for i in range(4)]
    merged = list(interleave(runs, rng))
    log = [ArchivedEvent(Position(TOPIC, 0, i), e) for i, e in enumerate(merged)]
    per: dict[str, list[ArchivedEvent]] = {}
    for item in log:
        per.setdefault(item.envelope.execution_id or "", []).append(item)
    return log, per


def _prefix(events: list[ArchivedEvent], sequence: int | None) -> ExecutionState | None:
    return fold_to_sequence((item.envelope for item in events), sequence)


async def _snapshots(events: list[ArchivedEvent], every: int) -> SnapshotBaseReader:
    store, index = MemorySnapshotStore(), MemorySnapshotIndex()
    writer = SnapshotWriter(store)
    state: ExecutionState | None = None
    for i, item in enumerate(events, start=1):
        state = step(state, item.envelope).state
        if i % every == 0 and state is not None:
            await index.add([await writer.write(PendingSnapshot(state, item.position, None))])
    return SnapshotBaseReader(index, SnapshotCodec(), store)


@pytest.mark.parametrize("every", [None, 3])
async def test_state_at_every_sequence_equals_the_fold_of_the_log_prefix(every: int | None) -> None:
    log, per = _histories()
    history = MemoryHistory(log)
    for execution_id, events in per.items():
        snapshots = None if every is None else await _snapshots(events, every)
        replayer = Replayer(history, snapshots=snapshots)
        final = _prefix(events, None)
        assert final is not None
        assert (await replayer.state(execution_id)).state == final
        for sequence in range(1, final.last_sequence + 2):
            replayed = await replayer.state(execution_id, Target(sequence=sequence))
            assert replayed.state == _prefix(events, sequence), (execution_id, sequence)
            if every is not None and sequence > every + 2:
                assert replayed.snapshot_key is not None


async def test_a_damaged_snapshot_costs_time_not_correctness() -> None:
    _, per = _histories()
    execution_id, events = next(iter(per.items()))
    source = await _snapshots(events, 2)
    store = source.store
    assert isinstance(store, MemorySnapshotStore)
    for key in await store.list():
        await store.put(key, b"garbage")
    replayed = await Replayer(MemoryHistory(events), snapshots=source).state(execution_id)
    assert replayed.state == _prefix(events, None)
    assert replayed.snapshot_key is None and replayed.events_folded == len(events)


async def test_time_and_checkpoint_targets() -> None:
    _, per = _histories()
    execution_id, events = max(per.items(), key=lambda kv: len(kv[1]))
    replayer = Replayer(MemoryHistory(events), snapshots=await _snapshots(events, 4))
    middle = events[len(events) // 2].envelope.occurred_at
    at_time = await replayer.state(execution_id, Target(time=middle))
    expected = _prefix([e for e in events if e.envelope.occurred_at <= middle], None)
    assert at_time.state == expected
    saved = [e.envelope for e in events if e.envelope.event_type == "CheckpointSaved"]
    if saved:
        checkpoint_id: str = saved[0].payload.checkpoint_id  # type: ignore[union-attr]
        at_checkpoint = await replayer.state(execution_id, Target(checkpoint=checkpoint_id))
        assert at_checkpoint.state == _prefix(events, saved[0].sequence)
    with pytest.raises(CheckpointNotFound):
        await replayer.state(execution_id, Target(checkpoint="ckpt_nobody"))
    with pytest.raises(HistoryNotFound):
        await replayer.state("exec_nobody")
    with pytest.raises(ValueError, match="one of"):
        Target(sequence=1, checkpoint="x")


async def test_steps_from_a_sequence_read_from_the_snapshot_before_it() -> None:
    _, per = _histories()
    execution_id, events = max(per.items(), key=lambda kv: len(kv[1]))
    history = MemoryHistory(events)
    replayer = Replayer(history, snapshots=await _snapshots(events, 5))
    final = _prefix(events, None)
    assert final is not None
    start = final.last_sequence - 10
    steps = [s async for s in replayer.steps(execution_id, start_sequence=start)]
    state: ExecutionState | None = None
    expected: list[Envelope] = []
    for item in events:
        state = step(state, item.envelope).state
        if expected or (state is not None and state.last_sequence > start):
            expected.append(item.envelope)
    assert [s.event for s in steps] == expected
    assert steps[0].before == _prefix(events, start) and steps[-1].after == final
    assert history.read < len(expected) + 8, "started from the snapshot before the start"
    for s in steps:
        assert s.after == step(s.before, s.event).state


async def test_steps_since_a_time_list_the_later_events() -> None:
    _, per = _histories()
    execution_id, events = max(per.items(), key=lambda kv: len(kv[1]))
    replayer = Replayer(MemoryHistory(events), snapshots=await _snapshots(events, 5))
    cut = events[len(events) // 3].envelope.occurred_at
    until = cut + timedelta(seconds=30)
    steps = [s async for s in replayer.steps(execution_id, Target(time=until), start_time=cut)]
    later = [e.envelope for e in events if e.envelope.occurred_at > cut]
    upto = []
    for envelope in later:
        if envelope.occurred_at > until:
            break
        upto.append(envelope)
    assert [s.event for s in steps] == upto


async def test_steps_without_a_start_list_every_event_even_with_snapshots() -> None:
    _, per = _histories()
    execution_id, events = max(per.items(), key=lambda kv: len(kv[1]))
    replayer = Replayer(MemoryHistory(events), snapshots=await _snapshots(events, 3))
    final = _prefix(events, None)
    assert final is not None
    steps = [s async for s in replayer.steps(execution_id)]
    assert [s.event for s in steps] == [e.envelope for e in events]
    assert steps[0].before is None and steps[-1].after == final
    middle = final.last_sequence // 2
    upto = [s.event async for s in replayer.steps(execution_id, Target(sequence=middle))]
    state: ExecutionState | None = None
    expected = []
    for item in events:
        state = step(state, item.envelope).state
        if state is not None and state.last_sequence > middle:
            break
        expected.append(item.envelope)
    assert upto == expected
