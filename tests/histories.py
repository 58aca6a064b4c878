"""Reference helpers over simulated histories, shared by unit and integration tests.

``flaky_log`` turns a clean history (``events.simulate``) into what an at-least-once
log with a zombie writer delivers; ``fold_to_sequence`` is the reference state at a
sequence, against which replay and restore are checked.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import replace

from orchestrator.events import catalogue as c
from orchestrator.events.envelope import Envelope
from orchestrator.events.fold import step
from orchestrator.events.simulate import HistoryWriter
from orchestrator.events.state import ExecutionState


def task_started(pipeline_id: str, task_id: str) -> list[c.Payload]:
    """The payloads of an execution of one task, up to that task's first attempt starting."""
    return [
        c.ExecutionCreated(pipeline_id=pipeline_id, tasks=(c.TaskSpec(task_id=task_id),)),
        c.ExecutionValidationStarted(),
        c.ExecutionValidationSucceeded(),
        c.TaskScheduled(task_id=task_id),
        c.TaskStarted(task_id=task_id, attempt=1),
    ]


def running_writer(execution_id: str, seed: int, task_id: str = "t") -> HistoryWriter:
    """A writer of an execution of one task, created and validated (running)."""
    w = HistoryWriter(execution_id, "p", random.Random(seed))
    for payload in task_started("p", task_id)[:3]:
        w.emit(payload)
    return w


def flaky_log(
    clean: Sequence[Envelope], rng: random.Random, *, retries: float, zombies: float
) -> list[Envelope]:
    """``clean`` with producer retries (an event again right after itself, with probability
    ``retries``) and, once the execution was taken over, zombie writes (what looks like
    the next event under the previous epoch, with probability ``zombies``)."""
    out: list[Envelope] = []
    epoch = clean[0].epoch
    for i, event in enumerate(clean):
        out.append(event)
        if isinstance(event.payload, c.ExecutionOwnershipTaken):
            epoch = event.payload.epoch
        if rng.random() < retries:
            out.append(event)
        if epoch > clean[0].epoch and rng.random() < zombies:
            nxt = clean[min(i + 1, len(clean) - 1)]
            out.append(
                replace(
                    nxt,
                    epoch=epoch - 1,
                    sequence=(event.sequence or 0) + 1,
                    event_id=str(uuid.uuid4()),
                )
            )
    return out


def fold_to_sequence(events: Iterable[Envelope], sequence: int | None) -> ExecutionState | None:
    """The fold of the longest prefix whose last_sequence stays <= ``sequence`` (the whole
    history for None): what a replay or restore "at sequence N" must give."""
    state: ExecutionState | None = None
    for event in events:
        nxt = step(state, event).state
        if sequence is not None and nxt is not None and nxt.last_sequence > sequence:
            break
        state = nxt
    return state
