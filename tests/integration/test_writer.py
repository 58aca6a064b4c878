"""The single writer on real Kafka and PostgreSQL: takeover, fencing, all-or-nothing.

Each test runs its own stack (fresh database, fresh topics, the projection processor
folding in the background); see ``_state_stack``.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import pytest
from _state_stack import Stack, state_stack

from commands import (
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
from events import catalogue as c
from events.envelope import Envelope
from events.errors import InvalidTransition
from events.fold import fold
from events.userdata import encode_user_data


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


async def test_zombie_writer_is_fenced_off_everywhere(kafka: Any, postgres: str) -> None:
    """A's lease expires while A is paused; B takes over and writes; A wakes and writes
    with its old epoch. A's late events are in Kafka but in no read model or replay."""
    execution_id = _id()
    # A never renews (its renewal is "paused" with it).
    async with state_stack(kafka, postgres, lease_ttl=1.0, renew_interval=3600) as stack:
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
        await stack.runtime.wait_for([*zombie_positions, *last])

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
