"""Properties: decide never produces an event the fold refuses, and never refuses what
a valid history did."""

from __future__ import annotations

import importlib
import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.commands.decide import Command
from orchestrator.events import catalogue as c
from orchestrator.events.fold import Outcome, fold, step
from orchestrator.events.simulate import simulate_execution
from orchestrator.events.state import ExecutionState

# The module (``commands.decide`` the attribute is the function, re-exported).
d = importlib.import_module("orchestrator.commands.decide")


def _random_command(state: ExecutionState | None, rng: random.Random) -> Command:
    tasks = [*(state.tasks if state else ()), "unknown_task"]
    checkpoints = [*(r.checkpoint_id for r in (state.checkpoints if state else ())), "ckpt_nope"]
    task = rng.choice(tasks)
    choices: list[Any] = [
        lambda: d.CreateExecution(execution_id="exec_0", pipeline_id="p", tasks=("a",)),
        d.StartValidation,
        d.SucceedValidation,
        lambda: d.FailValidation(error="bad input"),
        lambda: d.Pause(reason="operator"),
        lambda: d.Resume(from_checkpoint=rng.choice([None, *checkpoints])),
        lambda: d.Complete(outputs={"report": "done"}),
        lambda: d.Fail(error="boom"),
        lambda: d.Cancel(),
        lambda: d.ScheduleTask(task_id=task),
        lambda: d.StartTask(task_id=task, attempt=rng.choice([None, 1, 2, 5])),
        lambda: d.CompleteTask(task_id=task, outputs=[1, 2]),
        lambda: d.FailTask(task_id=task, error="x", attempt=rng.choice([None, 1])),
        lambda: d.ScheduleRetry(task_id=task, delay_seconds=1.0),
        lambda: d.SkipTask(task_id=task),
        lambda: d.SaveCheckpoint(name="cp", task_id=rng.choice([None, task]), data={"p": 1}),
        lambda: d.RestoreCheckpoint(checkpoint_id=rng.choice(checkpoints)),
    ]
    made: Command = rng.choice(choices)()
    return made


@settings(max_examples=300, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), commands=st.integers(1, 12))
def test_decide_raises_or_returns_events_the_fold_applies(seed: int, commands: int) -> None:
    rng = random.Random(seed)
    history = simulate_execution("exec_0", rng, tasks=rng.randint(1, 4))
    state = fold(history[: rng.randint(0, len(history))])
    for _ in range(commands):
        command = _random_command(state, rng)
        try:
            payloads = d.decide(state, command)
        except d.InvalidCommand:
            continue
        assert payloads
        # Stamped as a writer would: its own epoch (>= the state's), the next sequences.
        epoch = 1 if state is None else state.epoch
        for envelope in d.candidates(state, payloads, epoch=epoch):
            result = step(state, envelope)
            assert result.outcome is Outcome.APPLIED, (command, result.reason)
            state = result.state


def _as_command(payload: c.Payload) -> Command | None:
    """The command that would have produced ``payload`` in a simulated history."""
    p: Any = payload
    simple: dict[type, Any] = {
        c.ExecutionValidationStarted: lambda: d.StartValidation(),
        c.ExecutionValidationSucceeded: lambda: d.SucceedValidation(),
        c.ExecutionValidationFailed: lambda: d.FailValidation(error=p.error),
        c.ExecutionPaused: lambda: d.Pause(reason=p.reason),
        c.ExecutionResumed: lambda: d.Resume(from_checkpoint=p.from_checkpoint, reason=p.reason),
        c.ExecutionCompleted: lambda: d.Complete(outputs=p.outputs),
        c.ExecutionFailed: lambda: d.Fail(error=p.error),
        c.ExecutionCancelled: lambda: d.Cancel(reason=p.reason),
        c.TaskScheduled: lambda: d.ScheduleTask(task_id=p.task_id),
        c.TaskStarted: lambda: d.StartTask(task_id=p.task_id, inputs=p.inputs),
        c.TaskCompleted: lambda: d.CompleteTask(
            task_id=p.task_id, outputs=p.outputs, metadata=p.metadata, details=p.details
        ),
        c.TaskFailed: lambda: d.FailTask(task_id=p.task_id, error=p.error, retryable=p.retryable),
        c.TaskRetryScheduled: lambda: d.ScheduleRetry(
            task_id=p.task_id, delay_seconds=p.delay_seconds
        ),
        c.TaskSkipped: lambda: d.SkipTask(task_id=p.task_id, reason=p.reason),
        c.CheckpointSaved: lambda: d.SaveCheckpoint(
            checkpoint_id=p.checkpoint_id,
            name=p.name,
            task_id=p.task_id,
            data=p.data,
            metadata=p.metadata,
            progress=p.progress,
        ),
        c.CheckpointRestored: lambda: d.RestoreCheckpoint(checkpoint_id=p.checkpoint_id),
    }
    maker = simple.get(type(payload))
    return None if maker is None else maker()


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_every_valid_history_can_be_produced_by_decide(seed: int) -> None:
    """Completeness: each event of a valid history is what decide makes of its command,
    with attempts filled in from state exactly as the history had them."""
    rng = random.Random(seed)
    history = simulate_execution("exec_0", rng, tasks=rng.randint(1, 5))
    state = fold(history[:1])
    for envelope in history[1:]:
        command = _as_command(envelope.payload)
        if command is not None:
            assert d.decide(state, command) == [envelope.payload]
        state = step(state, envelope).state
