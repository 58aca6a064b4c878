"""The single writer on real Kafka and PostgreSQL: takeover, fencing, all-or-nothing;
a zombie writer's late events in no read model, snapshot, restore or replay.

Each test runs its own stack (fresh database, fresh topics, the projection processor
folding in the background); see ``_state_stack``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from _history_support import at_sequence, cli, log_events
from _projector_support import wait_until
from _snapshot_support import archive_restorer
from _state_stack import Stack, state_stack

from orchestrator.commands import (
    Complete,
    CompleteTask,
    CreateExecution,
    ExecutionNotOwned,
    ExecutionWriter,
    LeaseLost,
    ScheduleTask,
    StartTask,
    StartValidation,
    SucceedValidation,
)
from orchestrator.debug import ReplayStep, StateDebugger, Target, to_jsonable
from orchestrator.debug.replay import Source
from orchestrator.events import catalogue as c
from orchestrator.events.envelope import Envelope, Position
from orchestrator.events.errors import InvalidTransition
from orchestrator.events.fold import Outcome, fold
from orchestrator.events.state import ExecutionState
from orchestrator.events.userdata import encode_user_data
from orchestrator.snapshots import FilesystemSnapshotStore, SnapshotCodec, SnapshotStore
from orchestrator.snapshots.policy import SnapshotPolicy
from orchestrator.snapshots.postgres import PostgresSnapshotIndex
from orchestrator.snapshots.snapshotter import Snapshotter, SnapshotterSettings
from orchestrator.state import StateRuntime


@pytest.fixture
async def stack(kafka: Any, postgres: str) -> Any:
    async with state_stack(kafka, postgres) as s:
        yield s


def _id() -> str:
    return f"exec_{uuid.uuid4().hex[:10]}"


async def _running(stack: Stack, execution_id: str, *tasks: str) -> ExecutionWriter:
    writer = await stack.runtime.create_execution(
        CreateExecution(execution_id=execution_id, pipeline_id="research_pipeline", tasks=tasks)
    )
    await writer.execute_many([StartValidation(), SucceedValidation()])
    return writer


async def _history(stack: Stack, writer: ExecutionWriter) -> list[Envelope]:
    assert writer.last_position is not None
    events = await stack.read_partition(writer.last_position)
    return [e for _, e in events if e.execution_id == writer.execution_id]


async def test_writer_appends_gapless_fenced_events_that_the_read_model_applies(
    stack: Stack,
) -> None:
    writer = await _running(stack, _id(), "init", "web_search")
    positions = await writer.execute_many(
        [ScheduleTask(task_id="init"), StartTask(task_id="init", inputs={"q": "quantum"})]
    )
    last = await writer.execute(CompleteTask(task_id="init", outputs={"results": [1, 2]}))
    assert positions[1] < last

    history = await _history(stack, writer)
    assert [e.sequence for e in history] == list(range(1, 7))
    assert {e.epoch for e in history} == {writer.epoch} == {1}

    await stack.runtime.read_model.wait_for(last, 30)
    stored = await stack.runtime.read_model.load_execution(writer.execution_id)
    assert stored == writer.state == fold(history)
    assert stored is not None and stored.tasks["init"].outputs == {"results": [1, 2]}


async def test_invalid_commands_raise_and_write_nothing(stack: Stack) -> None:
    writer = await _running(stack, _id(), "init")
    before = await stack.end_offsets()
    with pytest.raises(InvalidTransition, match="cannot StartValidation from status 'running'"):
        await writer.execute(StartValidation())
    # All or nothing: the valid first command is not written either.
    with pytest.raises(InvalidTransition) as info:
        await writer.execute_many(
            [StartTask(task_id="init"), Complete(), CompleteTask(task_id="init")]
        )
    assert info.value.from_status == "completed"
    assert await stack.end_offsets() == before
    assert writer.state.tasks["init"].status == "pending"


async def test_takeover_continues_at_the_next_sequence_with_a_higher_epoch(stack: Stack) -> None:
    execution_id = _id()
    a = await _running(stack, execution_id, "init")
    other = stack.new_runtime("node-b")
    with pytest.raises(ExecutionNotOwned) as info:
        await other.open_execution(execution_id)  # A holds the lease
    assert info.value.holder == "node-b"
    assert info.value.current_holder == "node-a"  # type: ignore[attr-defined]

    await stack.runtime.release_execution(execution_id)
    b = await other.open_execution(execution_id)
    assert (b.epoch, b.state.last_sequence, b.state.status) == (2, 3, "running")
    assert b.state.owner == "node-b"
    await b.execute(ScheduleTask(task_id="init"))
    with pytest.raises(ExecutionNotOwned):
        await a.execute(StartTask(task_id="init"))

    history = await _history(stack, b)
    assert [e.sequence for e in history] == [1, 2, 3, None, 4]
    assert [e.epoch for e in history] == [1, 1, 1, 2, 2]
    await other.close()


async def _wait_expired_per_db(stack: Stack, lease_name: str) -> None:
    """Sleep until the database's clock (the one that decides) says the lease expired."""
    while await stack.pool.fetchval(  # noqa: ASYNC110 - polling the server's clock
        "SELECT expires_at > now() FROM leases WHERE name = $1", lease_name
    ):
        await asyncio.sleep(0.05)


@dataclass
class _Zombie:
    """The zombie scenario's actors and what each wrote."""

    execution_id: str
    a: ExecutionWriter
    b: ExecutionWriter
    other: StateRuntime
    zombie: list[Envelope]
    positions: list[Position]
    """Where the zombie's and B's writes sit in the log."""


async def _zombie_writes(stack: Stack) -> _Zombie:
    """A's lease expires while A is paused (the stack never renews); B takes over and
    writes; A wakes: its own check refuses, but a send that slipped past the check
    appends three events with A's old epoch; then B writes three more."""
    execution_id = _id()
    a = await _running(stack, execution_id, "init", "web_search")
    await a.execute_many([ScheduleTask(task_id="init"), StartTask(task_id="init")])
    await _wait_expired_per_db(stack, a.lease_name)

    other = stack.new_runtime("node-b")
    b = await other.open_execution(execution_id)
    assert (b.epoch, b.state.last_sequence) == (2, a.state.last_sequence)
    await b.execute(CompleteTask(task_id="init", outputs={"by": "B"}))

    # A wakes. Its own check refuses and writes nothing...
    before = await stack.end_offsets()
    with pytest.raises(LeaseLost):
        await a.execute(CompleteTask(task_id="init", outputs={"by": "A"}))
    assert await stack.end_offsets() == before
    # ...but a zombie that slipped past its check (a GC pause between check and
    # send) appends with its old epoch, at what it believes are the next sequences.
    seq = a.state.last_sequence
    zombie = [
        Envelope(
            execution_id=execution_id,
            pipeline_id="research_pipeline",
            sequence=seq + i,
            epoch=a.epoch,
            payload=payload,
            producer="node-a",
        )
        for i, payload in enumerate(
            [
                c.TaskCompleted(task_id="init", outputs=encode_user_data({"by": "A"})),
                c.TaskScheduled(task_id="web_search"),
                c.ExecutionCompleted(outputs=encode_user_data({"by": "A"})),
            ],
            start=1,
        )
    ]
    zombie_positions = await stack.log.append_batch(zombie)
    # B goes on after the zombie's writes.
    last = await b.execute_many(
        [
            ScheduleTask(task_id="web_search"),
            StartTask(task_id="web_search"),
            CompleteTask(task_id="web_search", outputs={"by": "B"}),
        ]
    )
    return _Zombie(execution_id, a, b, other, zombie, [*zombie_positions, *last])


async def test_zombie_writer_is_fenced_off_everywhere(kafka: Any, postgres: str) -> None:
    """A's lease expires while A is paused; B takes over and writes; A wakes and writes
    with its old epoch. A's late events are in Kafka but in no read model or replay."""
    # A never renews (its renewal is "paused" with it).
    async with state_stack(kafka, postgres, lease_ttl=1.0, renew_interval=3600) as stack:
        z = await _zombie_writes(stack)
        execution_id, b, other, zombie = z.execution_id, z.b, z.other, z.zombie
        await stack.runtime.wait_for(z.positions)

        # In Kafka: A's late events are there.
        log_history = await _history(stack, b)
        zombie_ids = {e.event_id for e in zombie}
        assert zombie_ids <= {e.event_id for e in log_history}
        clean = [e for e in log_history if e.event_id not in zombie_ids]

        # Replay: folding the whole log equals folding it without A's late events.
        assert fold(log_history) == fold(clean) == b.state
        # B's history is gapless, and it is what every reader sees.
        sequenced = [e.sequence for e in clean if e.sequence is not None]
        assert sequenced == list(range(1, b.state.last_sequence + 1))
        # Read model: pipeline_states / task_states rows are B's history.
        stored = await other.read_model.load_execution(execution_id)
        assert stored == b.state
        assert stored is not None and stored.status == "running"
        assert stored.tasks["init"].outputs == {"by": "B"}
        rows = await stack.pool.fetch(
            "SELECT task_id, status, outputs::text FROM task_states"
            " WHERE execution_id = $1 ORDER BY task_id",
            execution_id,
        )
        assert [(r["task_id"], r["status"], r["outputs"]) for r in rows] == [
            ("init", "completed", '{"by": "B"}'),
            ("web_search", "completed", '{"by": "B"}'),
        ]
        # The archive keeps A's events with the fold's verdict (nothing dropped silently).
        verdicts = await stack.pool.fetch(
            "SELECT event_id, outcome FROM execution_events WHERE event_id = ANY($1::text[])",
            list(zombie_ids),
        )
        assert {r["outcome"] for r in verdicts} == {"stale_epoch"} and len(verdicts) == 3
        await other.close()


@contextlib.asynccontextmanager
async def _snapshotting(stack: Stack, store: SnapshotStore) -> AsyncIterator[Snapshotter]:
    """The real snapshotter (its own consumer group) over the stack's pipeline topic:
    a snapshot every 2 events and at a terminal status."""
    snapshotter = Snapshotter(
        SnapshotterSettings(
            topic=stack.topics.pipeline.name,
            poll_timeout_ms=20,
            archive_projection=stack.projection.name,
        ),
        dsn=stack.dsn,
        bootstrap=stack.kafka.bootstrap_servers,
        store=store,
        policy=SnapshotPolicy(frequency=2, on_terminal=True, interval=None),
    )
    async with snapshotter:
        task = asyncio.create_task(snapshotter.run(), name="snapshotter")
        try:
            yield snapshotter
        finally:
            snapshotter.request_stop()
            await asyncio.wait_for(task, 30)  # a snapshotter error fails the test here


def _jsonable(state: ExecutionState | None) -> Any:
    return json.loads(json.dumps(to_jsonable(state), default=str))


async def test_zombie_writes_are_in_no_snapshot_restore_or_replay(
    kafka: Any, postgres: str, tmp_path: Path
) -> None:
    """The same zombie, with the real snapshotter running: every snapshot, every restore
    and every replay (archive or log, API or CLI) is B's history, never A's."""
    store, codec = FilesystemSnapshotStore(tmp_path), SnapshotCodec()
    async with (
        state_stack(kafka, postgres, lease_ttl=1.0, renew_interval=3600) as stack,
        _snapshotting(stack, store) as snapshotter,
    ):
        z = await _zombie_writes(stack)
        eid, b = z.execution_id, z.b
        z.positions.append(await b.execute(Complete()))  # terminal: a snapshot is due
        await stack.runtime.wait_for(z.positions)
        end = await stack.log.end_offsets(stack.topics.pipeline.name)
        done = {(stack.topics.pipeline.name, p): o for p, o in end.items()}

        async def snapshotted() -> bool:
            return snapshotter.positions == done

        await wait_until(snapshotted, 60, "the snapshotter to cover the whole topic")

        log = await log_events(stack, eid, z.positions[-1])
        zombie_ids = {e.event_id for e in z.zombie}
        zombie_at = {e.position for e in log if e.envelope.event_id in zombie_ids}
        assert len(zombie_at) == 3  # A's late events are in Kafka...
        clean = [e for e in log if e.envelope.event_id not in zombie_ids]
        sequenced = [e.envelope.sequence for e in clean if e.envelope.sequence is not None]
        final = b.state
        assert sequenced == list(range(1, final.last_sequence + 1)) == list(range(1, 11))
        assert at_sequence(log, None) == at_sequence(clean, None) == final
        assert final.status == "completed" and final.tasks["init"].outputs == {"by": "B"}
        # What a reader that took A's writes at their word would show: A's history.
        naive = [e for e in log if e.envelope.epoch == z.a.epoch]
        claimed = [e.sequence for e in z.zombie if e.sequence is not None]
        assert claimed == [6, 7, 8]
        for sequence in [*claimed, None]:
            assert at_sequence(naive, sequence) != at_sequence(clean, sequence), sequence
        assert _a_wrote(at_sequence(naive, None))

        def expected(sequence: int | None) -> ExecutionState | None:
            return at_sequence(clean, sequence)

        # Snapshots: every 2 sequences and the terminal one; A's writes neither trigger
        # one nor show in one.
        index = PostgresSnapshotIndex(stack.pool)
        rows = sorted(
            (r for r in await index.all() if r.execution_id == eid), key=lambda r: r.sequence
        )
        assert [r.sequence for r in rows] == [2, 4, 6, 8, 10]
        for row in rows:
            snap = codec.decode(await store.get(row.object_key), store.uri(row.object_key))
            assert (snap.header.sequence, snap.header.position) == (row.sequence, row.position)
            assert row.position not in zombie_at
            assert snap.state == expected(row.sequence), row.sequence
            assert snap.state.epoch == (1 if row.sequence < 6 else 2)
            assert not _a_wrote(snap.state)

        # Restore: snapshot + archive (which holds A's events) at every sequence.
        restorer = archive_restorer(stack.pool, store, codec, index)
        latest = await restorer.latest(eid)
        assert latest.state == final and latest.snapshot_key is not None
        for sequence in range(1, final.last_sequence + 1):
            restored = await restorer.at_sequence(eid, sequence)
            assert restored.state == expected(sequence), sequence

        # Replay tool, from the archive and from the log, with and without snapshots.
        for use_snapshots in (True, False):
            debugger = StateDebugger(
                pool=stack.pool,
                projection=stack.projection,
                bootstrap_servers=stack.kafka.bootstrap_servers,
                use_snapshots=use_snapshots,
                snapshot_store=store,
            )
            sources: tuple[Source, ...] = ("archive", "log")
            for source in sources:
                for sequence in [*range(5, 11), None]:
                    target = Target(sequence=sequence)
                    replayed = await debugger.replay(eid, target, source=source)
                    assert replayed.state == expected(sequence), (use_snapshots, source, sequence)
                steps = [s async for s in debugger.replay_steps(eid, source=source)]
                assert [s.event.event_id for s in steps] == [e.envelope.event_id for e in log]
                assert _stale(steps) == [e.event_id for e in z.zombie]
        db = ["--database-url", stack.dsn, "--projection", stack.projection.name]
        kafka_args = [
            "--bootstrap-servers",
            stack.kafka.bootstrap_servers,
            "--pipeline-topic",
            stack.topics.pipeline.name,
        ]
        for args, sequence in (
            (["--store", str(store.base_path)], None),
            (["--store", str(store.base_path), "--seq", "7"], 7),
            (["--source", "log", *kafka_args], None),
            (["--source", "log", "--no-snapshots", "--seq", "7", *kafka_args], 7),
        ):
            result = await cli("replay", eid, "--json", *db, *args)
            assert result.exit_code == 0, result.output
            assert json.loads(result.stdout) == _jsonable(expected(sequence)), args
        await z.other.close()


def _a_wrote(state: ExecutionState | None) -> bool:
    """Whether any of A's late writes shows in ``state``."""
    assert state is not None
    return bool(state.outputs == {"by": "A"} or state.tasks["init"].outputs == {"by": "A"})


def _stale(steps: Sequence[ReplayStep]) -> list[str]:
    """Event ids the replay folded as stale-epoch writes; each must change nothing."""
    stale = [s for s in steps if s.outcome is Outcome.STALE_EPOCH]
    assert all(s.before == s.after and not list(s.changes()) for s in stale)
    return [s.event.event_id for s in stale]
