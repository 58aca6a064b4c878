"""``StateMachine``: the seed's class as written works, and the execution lifecycle
(``PipelineStateMachine``, the table ``decide`` and the fold use) behaves like it."""

from __future__ import annotations

import itertools

import pytest

from orchestrator.events.errors import InvalidTransition
from orchestrator.events.machines import PIPELINE_MACHINE
from orchestrator.state import PipelineStateMachine, StateMachine
from tests.seed_machine import PipelineStateMachine as SeedPipelineStateMachine
from tests.seed_machine import RecordedHooks


class Recorded(RecordedHooks, SeedPipelineStateMachine):
    """The seed's class with the helpers its hooks call."""

    def __init__(self, state: str | None = None) -> None:
        super().__init__(state)
        self.calls = []


SEED_EVENTS = sorted({t["on"] for t in SeedPipelineStateMachine.transitions})


async def _outcome(machine: StateMachine, event: str) -> str:
    try:
        return await machine.trigger(event)
    except InvalidTransition:
        return "invalid"


@pytest.mark.parametrize(
    ("state", "event"), list(itertools.product(PIPELINE_MACHINE.states, SEED_EVENTS))
)
async def test_pipeline_machine_behaves_as_the_seeds_class(state: str, event: str) -> None:
    seed, ours = Recorded(state), PipelineStateMachine(state)
    assert await _outcome(seed, event) == await _outcome(ours, event)
    assert seed.state == ours.state


async def test_pipeline_machine_also_recovers_failed_executions() -> None:
    """The one addition: the seed's manual recovery resumes a failed execution."""
    ours = PipelineStateMachine("failed")
    assert await ours.trigger("recover") == "running"
    with pytest.raises(InvalidTransition):
        await Recorded("failed").trigger("recover")


def test_pipeline_machine_is_the_table_decide_and_the_fold_use() -> None:
    table = PipelineStateMachine.machine()
    assert table.states == PIPELINE_MACHINE.states
    assert table.initial == PIPELINE_MACHINE.initial
    assert table.terminal == PIPELINE_MACHINE.terminal
    assert table.as_table() == PIPELINE_MACHINE.as_table()
    seed_table = SeedPipelineStateMachine.machine().as_table()
    assert {k: v for k, v in PIPELINE_MACHINE.as_table().items() if k != "recover"} == seed_table


async def test_hooks_run_exit_then_enter_and_event_methods_exist() -> None:
    machine = Recorded()
    assert machine.state == "initialized"
    await machine.start()  # type: ignore[attr-defined]
    await machine.validation_success()  # type: ignore[attr-defined]
    assert machine.calls == ["start_monitoring"]
    await machine.pause()  # type: ignore[attr-defined]
    assert machine.calls == ["start_monitoring", "stop_monitoring", "create_checkpoint"]
    assert machine.state == "paused"
    assert machine.allowed() == ["resume", "cancel"]


async def test_invalid_event_changes_nothing_and_names_state_and_event() -> None:
    machine = Recorded("completed")
    with pytest.raises(InvalidTransition) as info:
        await machine.trigger("pause")
    assert (info.value.from_status, info.value.action) == ("completed", "pause")
    assert machine.state == "completed" and machine.calls == []


def test_a_transition_naming_an_unknown_state_is_refused_at_class_definition() -> None:
    with pytest.raises(TypeError, match="unknown"):

        class Broken(StateMachine):
            states = ("a", "b")
            transitions = ({"from": "a", "to": "c", "on": "go"},)
