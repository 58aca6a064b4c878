"""The fold's rules, one behaviour at a time."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from orchestrator.events import catalogue as c
from orchestrator.events.envelope import Envelope
from orchestrator.events.errors import InvalidTransition
from orchestrator.events.fold import Outcome, fold, step, step_shared
from orchestrator.events.machines import PIPELINE_MACHINE, TASK_MACHINE
from orchestrator.events.userdata import encode_user_data

T0 = datetime(2024, 1, 15, 10, 0, tzinfo=UTC)


def ev(seq: int | None, payload: c.Payload, epoch: int = 1) -> Envelope:
    return Envelope(
        execution_id="exec_12345",
        pipeline_id="research_assistant",
        sequence=seq,
        epoch=epoch,
        payload=payload,
        occurred_at=T0,
    )


def started() -> list[Envelope]:
    specs = (c.TaskSpec(task_id="init"), c.TaskSpec(task_id="web_search", depends_on=("init",)))
    return [
        ev(1, c.ExecutionCreated(pipeline_id="research_assistant", tasks=specs)),
        ev(2, c.ExecutionValidationStarted()),
        ev(3, c.ExecutionValidationSucceeded()),
    ]


def test_created_execution_is_initialized_with_pending_tasks() -> None:
    state = fold(started()[:1])
    assert state is not None
    assert state.status == "initialized"
    assert state.pending_tasks == ("init", "web_search")
    assert state.progress == 0.0


def test_task_lifecycle_fills_the_seed_fields() -> None:
    history = [
        *started(),
        ev(4, c.TaskStarted(task_id="init", attempt=1, inputs=encode_user_data({"q": "x"}))),
        ev(
            5,
            c.TaskCompleted(
                task_id="init",
                outputs=encode_user_data({"results": [1, 2]}),
                details=c.ExecutionDetails(duration=150.5, model_calls=3, tokens_used=1500),
            ),
        ),
        ev(6, c.TaskStarted(task_id="web_search", attempt=1)),
    ]
    state = fold(history)
    assert state is not None
    assert state.status == "running"
    assert state.completed_tasks == ("init",)
    assert state.current_task == "web_search"
    assert state.pending_tasks == ()
    assert state.progress == 0.5
    init = state.tasks["init"]
    assert init.outputs == {"results": [1, 2]}
    assert init.inputs == {"q": "x"}
    assert init.execution_details["tokens_used"] == 1500


def test_invalid_transition_is_rejected_and_leaves_its_sequence_free() -> None:
    history = started()
    state = fold(history)
    bad = step(state, ev(4, c.ExecutionResumed()))  # running → resume is not allowed
    assert bad.outcome is Outcome.REJECTED
    assert "resume" in (bad.reason or "") and "running" in (bad.reason or "")
    assert bad.state is state and bad.state.last_sequence == 3
    after = step(bad.state, ev(4, c.ExecutionPaused()))  # the genuine event 4 still applies
    assert after.outcome is Outcome.APPLIED
    assert after.state.status == "paused"


def test_sequence_gap_is_rejected_without_advancing() -> None:
    state = fold(started())
    result = step(state, ev(9, c.ExecutionPaused()))
    assert result.outcome is Outcome.REJECTED
    assert result.state == state


def test_zombie_after_takeover_is_dropped() -> None:
    state = fold([*started(), ev(None, c.ExecutionOwnershipTaken(epoch=2, node_id="b"), epoch=2)])
    assert state is not None and state.epoch == 2 and state.owner == "b"
    zombie = step(state, ev(4, c.ExecutionPaused(), epoch=1))
    assert zombie.outcome is Outcome.STALE_EPOCH
    assert zombie.state == state
    successor = step(state, ev(4, c.ExecutionPaused(), epoch=2))
    assert successor.outcome is Outcome.APPLIED


def test_duplicate_is_dropped() -> None:
    history = started()
    state = fold(history)
    assert step(state, history[1]).outcome is Outcome.DUPLICATE


def test_events_before_creation_are_rejected() -> None:
    assert step(None, ev(1, c.ExecutionPaused())).outcome is Outcome.REJECTED
    assert step(None, ev(None, c.ExecutionOwnershipTaken(epoch=1, node_id="a"))).outcome is (
        Outcome.REJECTED
    )


def test_task_events_on_a_finished_execution_are_rejected() -> None:
    state = fold([*started(), ev(4, c.ExecutionFailed(error="boom"))])
    result = step(state, ev(5, c.TaskStarted(task_id="init", attempt=1)))
    assert result.outcome is Outcome.REJECTED
    assert "failed" in (result.reason or "")


def test_failed_execution_can_be_recovered() -> None:
    state = fold([*started(), ev(4, c.ExecutionFailed(error="boom")), ev(5, c.ExecutionResumed())])
    assert state is not None and state.status == "running" and state.error is None


def test_checkpoints_are_listed_in_order() -> None:
    cp = c.CheckpointSaved(checkpoint_id="cp1", name="after_part_1", task_id="init", progress=0.33)
    state = fold([*started(), ev(4, cp)])
    assert state is not None
    assert [(r.checkpoint_id, r.sequence, r.task_id) for r in state.checkpoints] == [
        ("cp1", 4, "init")
    ]
    unknown = step(state, ev(5, c.CheckpointRestored(checkpoint_id="nope")))
    assert unknown.outcome is Outcome.REJECTED


def test_pipeline_machine_is_the_seeds() -> None:
    assert PIPELINE_MACHINE.next("initialized", "start") == "validating"
    assert PIPELINE_MACHINE.next("paused", "cancel") == "cancelled"
    with pytest.raises(InvalidTransition) as info:
        PIPELINE_MACHINE.next("completed", "pause", subject="execution e1")
    assert info.value.from_status == "completed" and "e1" in str(info.value)
    assert TASK_MACHINE.next("failed", "retry") == "retrying"


def shared(version: int, value: object = 1, **kw: object) -> Envelope:
    payload = c.SharedVariableSet(
        namespace="research_pipeline",
        name="quality_threshold",
        type="float",
        value=encode_user_data(value),
        version=version,
        **kw,  # type: ignore[arg-type]
    )
    return replace(ev(None, payload), execution_id=None)


def test_shared_variable_versions_and_immutability() -> None:
    first = step_shared(None, shared(1, 0.8, immutable=True))
    assert first.applied
    assert first.state.variables["quality_threshold"].value == 0.8
    overwrite = step_shared(first.state, shared(2, 0.9))
    assert overwrite.outcome is Outcome.REJECTED and "immutable" in (overwrite.reason or "")
    stale = step_shared(first.state, shared(3, 0.9))
    assert stale.outcome is Outcome.REJECTED
