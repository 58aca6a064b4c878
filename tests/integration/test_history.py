"""Replay and trace against the real stack: Kafka log, processor, archive, snapshots.

Two executions go through the real topic and processor: ``A`` with 1,000 events
(replayed at every sequence) and ``B`` with 5,000 (snapshot + archive restores,
``--diff --last 1000`` streaming). References are ``events.fold`` over the events
the log holds.
"""

from __future__ import annotations

import json
import tracemalloc
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from _history_support import append, at_sequence, cli, history, log_events, unique_ids
from _history_support import write_snapshots as snapshot_every
from _state_stack import Stack, state_stack

from orchestrator.debug import StateDebugger, Target, to_jsonable
from orchestrator.events import ArchivedEvent, LogReader
from orchestrator.events.fold import step
from orchestrator.events.state import ExecutionState
from orchestrator.snapshots import FilesystemSnapshotStore


@dataclass
class World:
    stack: Stack
    a: str
    b: str
    a_log: list[ArchivedEvent]
    b_log: list[ArchivedEvent]
    store: FilesystemSnapshotStore

    def debugger(self, **kwargs: Any) -> StateDebugger:
        kwargs.setdefault("snapshot_store", self.store)
        return StateDebugger(
            pool=self.stack.pool,
            projection=self.stack.projection,
            bootstrap_servers=self.stack.kafka.bootstrap_servers,
            **kwargs,
        )

    def db_args(self) -> list[str]:
        return ["--database-url", self.stack.dsn, "--projection", self.stack.projection.name]


@pytest.fixture(scope="module")
async def world(
    kafka: Any, postgres: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[World]:
    async with state_stack(kafka, postgres) as stack:
        run = uuid.uuid4().hex[:6]
        a, b = f"exec_a_{run}", f"exec_b_{run}"
        events_a = unique_ids(history(a, 1000, seed=3), a)
        events_b = unique_ids(history(b, 5000, seed=4), b)
        positions = await append(stack, events_a + events_b)
        a_log = await log_events(stack, a, positions[0])
        b_log = await log_events(stack, b, positions[-1])
        assert [e.envelope.event_id for e in a_log] == [e.event_id for e in events_a]
        store = FilesystemSnapshotStore(tmp_path_factory.mktemp("snapshots"))
        await snapshot_every(stack.pool, store, a_log, 100)
        await snapshot_every(stack.pool, store, b_log, 100)
        yield World(stack, a, b, a_log, b_log, store)


async def test_replay_at_every_sequence_equals_the_fold_of_the_log_prefix(world: World) -> None:
    debugger = world.debugger()
    last = at_sequence(world.a_log, None)
    assert last is not None and last.last_sequence > 900
    for sequence in range(1, last.last_sequence + 1):
        replayed = await debugger.replay(world.a, Target(sequence=sequence))
        assert replayed.state == at_sequence(world.a_log, sequence), sequence
        assert replayed.state.last_sequence == sequence
    # The command line prints the same state as JSON.
    for sequence in (1, 517, last.last_sequence):
        result = await cli("replay", world.a, "--seq", sequence, "--json", *world.db_args())
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout) == _jsonable(at_sequence(world.a_log, sequence))


async def test_log_and_archive_sources_agree(world: World) -> None:
    debugger = world.debugger(use_snapshots=False)
    final = at_sequence(world.a_log, None)
    assert final is not None
    for sequence in [*range(1, final.last_sequence, 97), final.last_sequence]:
        from_log = await debugger.replay(world.a, Target(sequence=sequence), source="log")
        from_archive = await debugger.replay(world.a, Target(sequence=sequence))
        assert from_log.state == from_archive.state == at_sequence(world.a_log, sequence)
    steps = {}
    for source in ("log", "archive"):
        steps[source] = [
            (s.position, s.event.event_id, s.outcome, [c.as_json() for c in s.changes()])
            async for s in world.debugger().replay_steps(world.a, source=source)  # type: ignore[arg-type]
        ]
    assert steps["log"] == steps["archive"]
    assert len(steps["log"]) == len(world.a_log)
    # Without the archive, the partition is the one the producer's partitioner chose.
    reader = LogReader(
        world.stack.topics.pipeline.name, bootstrap_servers=world.stack.kafka.bootstrap_servers
    )
    assert await reader.partition_of(world.a) == world.a_log[0].position.partition
    result = await cli(
        "replay",
        world.a,
        "--source",
        "log",
        "--json",
        *world.db_args(),
        "--bootstrap-servers",
        world.stack.kafka.bootstrap_servers,
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == _jsonable(final)


async def test_latest_state_comes_from_the_newest_snapshot_plus_the_archive(world: World) -> None:
    replayed = await world.debugger().replay(world.b)
    assert replayed.state == at_sequence(world.b_log, None)
    assert replayed.snapshot_key is not None and replayed.events_folded < 100
    no_snapshots = await world.debugger(use_snapshots=False).replay(world.b)
    assert no_snapshots.state == replayed.state and no_snapshots.events_folded == len(world.b_log)
    result = await cli("replay", world.b, *world.db_args(), "--store", world.store.base_path)
    assert result.exit_code == 0, result.output
    assert world.b in result.stdout and replayed.state.status in result.stdout
    assert f"{replayed.events_folded} event(s)" in result.stdout


async def test_diff_of_the_last_1000_events_streams_from_the_snapshot_before_them(
    world: World,
) -> None:
    debugger = world.debugger(page_size=100)
    archive = debugger.archive
    final = at_sequence(world.b_log, None)
    assert final is not None
    start = final.last_sequence - 1000
    expected = _after_sequence(world.b_log, start)
    stream = debugger.replay_steps(world.b, last=1000)
    first = await anext(stream)
    # One snapshot (<= 100 events before the start) and one page ahead: not the history.
    assert archive.rows_read <= 300, archive.rows_read
    assert first.event.event_id == expected[0].envelope.event_id
    count = 1
    tracemalloc.start()
    try:
        async for item in stream:
            count += 1
            assert list(item.changes()) is not None
        _, streaming_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == len(expected)
    assert archive.rows_read <= len(expected) + 300
    # Holding the same steps instead costs several times more than streaming them.
    tracemalloc.start()
    try:
        held = [s async for s in debugger.replay_steps(world.b, last=1000)]
        _, holding_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(held) == count
    assert streaming_peak * 4 < holding_peak, (streaming_peak, holding_peak)
    # The command line prints the same events as JSON lines, one per event.
    result = await cli(
        "replay",
        world.b,
        "--diff",
        "--last",
        "1000",
        "--json",
        *world.db_args(),
        "--store",
        world.store.base_path,
    )
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["position"] for line in lines] == [e.position.token() for e in expected]
    assert all({"event_type", "outcome", "changes", "sequence"} <= set(line) for line in lines)


async def test_trace_lists_each_event_since_a_time_with_its_changes(world: World) -> None:
    events = world.a_log
    cut = events[400].envelope.occurred_at
    trace = await world.debugger().trace_state_changes(world.a, from_time=cut)
    expected = [e for e in events if e.envelope.occurred_at > cut]
    assert [e.position for e in trace.entries] == [e.position for e in expected]
    assert trace.initial == at_sequence(events[:401], None)
    assert trace.final == at_sequence(events, None)
    first = trace.entries[0]
    assert first.changes and all(c.path for c in first.changes)
    result = await cli("trace", world.a, "--since", cut.isoformat(), "--json", *world.db_args())
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [line["position"] for line in lines] == [e.position.token() for e in expected]


async def test_replay_of_an_unknown_execution_says_so(world: World) -> None:
    result = await cli("replay", "exec_nobody", *world.db_args())
    assert result.exit_code == 1
    assert "exec_nobody: no events" in result.stderr


def _after_sequence(events: list[ArchivedEvent], start: int) -> list[ArchivedEvent]:
    """The events after the state at sequence ``start`` (what ``--last`` shows)."""
    state: ExecutionState | None = None
    out: list[ArchivedEvent] = []
    for item in events:
        state = step(state, item.envelope).state
        if out or (state is not None and state.last_sequence > start):
            out.append(item)
    return out


def _jsonable(state: ExecutionState | None) -> Any:
    return json.loads(json.dumps(to_jsonable(state), default=str))
