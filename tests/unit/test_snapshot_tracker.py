"""The snapshotter's core: triggers, and a low watermark that survives any crash."""

from __future__ import annotations

import random
import zlib
from dataclasses import replace
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.events import catalogue as c
from orchestrator.events.envelope import Envelope, Position
from orchestrator.events.fold import fold
from orchestrator.events.simulate import interleave, simulate_execution
from orchestrator.events.state import ExecutionState
from orchestrator.snapshots._tracker import SnapshotTracker
from orchestrator.snapshots.policy import SnapshotPolicy

TOPIC = "orchestrator.pipeline.events"


def _log(seed: int, executions: int, partitions: int) -> list[tuple[Position, Envelope]]:
    rng = random.Random(seed)
    histories = []
    for n in range(executions):
        events = simulate_execution(f"exec_{n}", rng, tasks=rng.randint(1, 8))
        # A producer retry now and then: the same event twice.
        dirty: list[Envelope] = []
        for e in events:
            dirty.append(e)
            if rng.random() < 0.1:
                dirty.append(e)
        histories.append(dirty)
    offsets = [0] * partitions
    log = []
    for event in interleave(histories, rng):
        p = zlib.crc32((event.execution_id or "").encode()) % partitions
        log.append((Position(TOPIC, p, offsets[p]), event))
        offsets[p] += 1
    return log


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    executions=st.integers(1, 8),
    partitions=st.integers(1, 3),
    frequency=st.integers(1, 15),
    crashes=st.lists(st.tuples(st.integers(1, 400), st.booleans()), max_size=6),
    batch=st.integers(1, 40),
)
def test_snapshots_stay_exact_across_crashes_at_any_batch(
    seed: int,
    executions: int,
    partitions: int,
    frequency: int,
    crashes: list[tuple[int, bool]],
    batch: int,
) -> None:
    """A crash after any batch, before or after its commit, never yields a snapshot
    whose state differs from the fold of the log up to its position."""
    log = _log(seed, executions, partitions)
    by_partition: dict[int, list[tuple[Position, Envelope]]] = {}
    for pos, ev in log:
        by_partition.setdefault(pos.partition, []).append((pos, ev))
    policy = SnapshotPolicy(frequency=frequency, interval=None)
    index: dict[str, tuple[ExecutionState, Position]] = {}  # committed snapshots
    committed = dict.fromkeys(by_partition, 0)
    crash_at = dict(crashes)
    batches = 0

    def run_until_crash() -> bool:
        nonlocal batches
        tracker = SnapshotTracker(policy, clean_cache=random.Random(seed).randint(0, 3))
        cursor = dict(committed)
        while True:
            chunk = []
            for p, events in by_partition.items():
                take = events[cursor[p] : cursor[p] + batch]
                chunk.extend(take)
            if not chunk:
                return False
            batches += 1
            for pos, ev in chunk:
                cursor[pos.partition] = max(cursor[pos.partition], pos.offset + 1)
                eid = ev.execution_id or ""
                if not tracker.knows(eid):
                    if eid in index:
                        state, at = index[eid]
                        tracker.adopt(eid, (TOPIC, pos.partition), state, covered=at)
                    else:
                        assert isinstance(ev.payload, c.ExecutionCreated), "folded from a hole"
                        tracker.adopt(eid, (TOPIC, pos.partition), None)
                tracker.fold(pos, ev)
            pending = tracker.take_pending()
            if crash_at.get(batches) is False:
                return True  # crashed after writing objects, before the commit
            for snap in pending:
                index[snap.state.execution_id] = (snap.state, snap.position)
            for p in by_partition:
                committed[p] = tracker.watermark((TOPIC, p), cursor[p])
            tracker.committed()
            if crash_at.get(batches) is True:
                return True

    while run_until_crash():
        pass
    # Every committed snapshot is the fold of its execution's log up to its position.
    for eid, (state, at) in index.items():
        prefix = [ev for pos, ev in log if ev.execution_id == eid and pos.offset <= at.offset]
        assert fold(prefix) == state, eid
    # And every execution's history is snapshotted up to its end at the frequency.
    for eid in {ev.execution_id for _, ev in log}:
        full = fold(ev for _, ev in log if ev.execution_id == eid)
        assert full is not None
        taken = index.get(eid or "")
        covered = 0 if taken is None else taken[0].last_sequence
        assert full.last_sequence - covered < frequency or full.status in (
            "completed",
            "failed",
            "cancelled",
        )


def _events(n_tasks: int = 3) -> list[Envelope]:
    return simulate_execution("e1", random.Random(4), tasks=n_tasks, takeovers=False)


def _feed(tracker: SnapshotTracker, events: list[Envelope], start: int = 0) -> None:
    for i, ev in enumerate(events):
        pos = Position(TOPIC, 0, start + i)
        if not tracker.knows(ev.execution_id or ""):
            tracker.adopt(ev.execution_id or "", (TOPIC, 0), None)
        tracker.fold(pos, ev)


def test_terminal_status_triggers_a_snapshot() -> None:
    events = _events()
    tracker = SnapshotTracker(SnapshotPolicy(frequency=10_000, interval=None))
    _feed(tracker, events)
    pending = tracker.take_pending()
    assert [p.state.status for p in pending] == [fold(events).status]  # type: ignore[union-attr]
    assert tracker.reasons() == {"terminal": 1}


def test_frequency_counts_sequences_since_the_last_snapshot() -> None:
    events = [e for e in _events(6) if e.sequence is not None][:12]
    tracker = SnapshotTracker(SnapshotPolicy(frequency=5, interval=None, on_terminal=False))
    _feed(tracker, events)
    assert [p.state.last_sequence for p in tracker.take_pending()] == [5, 10]


def test_named_tasks_trigger_with_min_interval_in_event_time() -> None:
    base = _events(3)
    t0 = base[0].occurred_at
    spaced = [replace(e, occurred_at=t0 + timedelta(seconds=10 * i)) for i, e in enumerate(base)]
    done = [e for e in spaced if isinstance(e.payload, c.TaskCompleted)]
    assert len(done) == 3
    policy = SnapshotPolicy(
        frequency=10_000,
        interval=None,
        on_terminal=False,
        after_tasks=frozenset({"task_0", "task_1"}),
        min_interval=1_000,
        on_success_tasks=frozenset({"task_2"}),
    )
    tracker = SnapshotTracker(policy)
    _feed(tracker, spaced)
    reasons = tracker.reasons()
    # task_0 snapshots; task_1 is within min_interval of it; task_2 is on_success.
    assert reasons == {"after_task": 1, "on_success": 1}


def test_periodic_snapshots_release_the_watermark_of_quiet_executions() -> None:
    clock = _Clock()
    tracker = SnapshotTracker(SnapshotPolicy(frequency=10_000, interval=300), clock=clock)
    events = _events()[:3]
    _feed(tracker, events, start=10)
    assert tracker.watermark((TOPIC, 0), 13) == 10
    assert tracker.take_pending() == []
    clock.now = 301
    pending = tracker.take_pending()
    assert len(pending) == 1 and pending[0].position.offset == 12
    tracker.committed()
    assert tracker.watermark((TOPIC, 0), 13) == 13
    assert tracker.dirty_count == 0 and tracker.clean_count == 1


def test_events_that_change_nothing_do_not_hold_the_watermark() -> None:
    events = _events()
    tracker = SnapshotTracker(SnapshotPolicy(frequency=10_000, interval=None))
    _feed(tracker, events)
    tracker.take_pending()
    tracker.committed()
    end = len(events)
    tracker.fold(Position(TOPIC, 0, end), events[3])  # a late duplicate
    assert tracker.dirty_count == 0
    assert tracker.watermark((TOPIC, 0), end + 1) == end + 1


def test_events_covered_by_the_adopted_snapshot_are_skipped() -> None:
    events = _events()
    state = fold(events[:5])
    tracker = SnapshotTracker(SnapshotPolicy(frequency=10_000, interval=None))
    tracker.adopt("e1", (TOPIC, 0), state, covered=Position(TOPIC, 0, 4))
    for i, ev in enumerate(events):
        tracker.fold(Position(TOPIC, 0, i), ev)
    entry = tracker.entry("e1")
    assert entry is not None and entry.state == fold(events)
    assert tracker.skipped_covered == 5


def test_release_forgets_the_partition() -> None:
    tracker = SnapshotTracker(SnapshotPolicy(interval=None))
    _feed(tracker, _events()[:3])
    tracker.release([(TOPIC, 0)])
    assert not tracker.knows("e1")


def test_finished_executions_leave_memory_once_covered() -> None:
    """The snapshotter's memory follows the executions in flight: of finished ones,
    covered by their terminal snapshot, it keeps ``finished_cache`` at most."""
    rng = random.Random(5)
    tracker = SnapshotTracker(SnapshotPolicy(interval=None), finished_cache=3)
    offset = 0
    for n in range(20):
        for event in simulate_execution(f"done_{n}", rng, tasks=2):
            if not tracker.knows(event.execution_id or ""):
                tracker.adopt(event.execution_id or "", (TOPIC, 0), None)
            tracker.fold(Position(TOPIC, 0, offset), event)
            offset += 1
        tracker.take_pending()
        tracker.committed()
    finished = [n for n in range(20) if tracker.entry(f"done_{n}") is not None]
    assert tracker.dirty_count == 0
    assert len(finished) <= 3
    assert tracker.watermark((TOPIC, 0), offset) == offset
