"""A fork's plan carries what was done before the fork point, and nothing else.

``plan_fork`` is pure: the commands it returns are checked here with the write side's
own ``decide`` (``commands.decide.evolve``), so the fork is valid by construction, and
its state after them must hold exactly the source's completed work.
"""

from __future__ import annotations

import random

from orchestrator.commands.decide import Pause, SaveCheckpoint, evolve
from orchestrator.debug import plan_fork
from orchestrator.events import catalogue as c
from orchestrator.events.fold import fold
from orchestrator.events.simulate import simulate_execution
from orchestrator.events.state import ExecutionState


def _source(seed: int, upto: int | None = None) -> tuple[ExecutionState, list[c.Payload]]:
    history = simulate_execution("exec_src", random.Random(seed), tasks=8, takeovers=True)
    history = history[:upto] if upto else history
    state = fold(history)
    assert state is not None
    return state, [e.payload for e in history if e.sequence is not None]


def _running_source() -> tuple[ExecutionState, list[c.Payload]]:
    for seed in range(200):
        state, payloads = _source(seed)
        if state.status == "completed" and state.checkpoints:
            cut = len(payloads) * 2 // 3
            state, payloads = _source(seed, cut)
            if state.status in ("running", "paused") and state.completed_tasks:
                return state, payloads
    raise AssertionError("no suitable simulated history")


def test_the_fork_holds_the_completed_work_and_lineage_and_nothing_more() -> None:
    source, payloads = _running_source()
    plan = plan_fork(source, "exec_fork", originals=payloads)
    fork = evolve(None, [plan.create, *plan.commands])
    assert fork is not None and fork.status == "running"
    assert (fork.forked_from, fork.fork_sequence) == ("exec_src", source.last_sequence)
    assert fork.root_execution_id == "exec_src"
    assert plan.carried == source.completed_tasks == fork.completed_tasks
    for task_id, task in fork.tasks.items():
        original = source.tasks[task_id]
        if original.status == "completed":
            assert task.outputs == original.outputs and task.attempts == 1
            assert task.metadata["fork"]["forked_from"] == "exec_src"
            assert task.metadata["fork"]["source_attempts"] == original.attempts
        else:
            assert task.status == "pending", task_id
    assert [r.name for r in fork.checkpoints] == [r.name for r in source.checkpoints]
    assert [r.checkpoint_id for r in fork.checkpoints] == [
        f"exec_fork:{r.checkpoint_id}" for r in source.checkpoints
    ]
    assert fork.context == source.context


def test_carried_events_keep_their_order_so_the_fork_can_be_forked_again() -> None:
    source, payloads = _running_source()
    plan = plan_fork(source, "exec_fork", originals=payloads)
    order = [
        ("done", p.task_id) if isinstance(p, c.TaskCompleted) else ("saved", p.checkpoint_id)
        for p in payloads
        if isinstance(p, c.TaskCompleted | c.CheckpointSaved)
    ]
    carried = [
        ("done", cmd.task_id)
        if type(cmd).__name__ == "CompleteTask"
        else ("saved", cmd.checkpoint_id.removeprefix("exec_fork:"))
        for cmd in plan.commands
        if type(cmd).__name__ == "CompleteTask" or isinstance(cmd, SaveCheckpoint)
    ]
    assert carried == order
    again = plan_fork(evolve(None, [plan.create, *plan.commands]), "exec_fork2")  # type: ignore[arg-type]
    assert again.create.root_execution_id == "exec_src"
    assert again.create.forked_from == "exec_fork"


def test_a_fork_before_validation_is_only_created_and_paused_forks_pause() -> None:
    source, payloads = _source(3, upto=2)
    assert source.status == "validating"
    plan = plan_fork(source, "exec_early", originals=payloads)
    fork = evolve(None, [plan.create, *plan.commands])
    assert fork is not None and fork.status == "validating" and plan.carried == ()
    running, originals = _running_source()
    paused = plan_fork(running, "exec_paused", originals=originals, paused=True)
    assert isinstance(paused.commands[-1], Pause)
    state = evolve(None, [paused.create, *paused.commands])
    assert state is not None and state.status == "paused"
