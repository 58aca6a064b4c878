"""Valid execution histories from a seeded random generator.

Benchmarks, demos and tests need many realistic, valid event streams (ownership
changes, retries, checkpoints, pauses). Generating them here, through the same state
machines the fold checks, keeps every such stream valid by construction.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from orchestrator.events import catalogue as c
from orchestrator.events.envelope import Envelope
from orchestrator.events.userdata import encode_user_data

_EPOCH_START = datetime(2024, 1, 15, 10, 0, tzinfo=UTC)
_ID_NAMESPACE = uuid.UUID("6f726368-6573-7472-6174-6f722d737461")


@dataclass
class HistoryWriter:
    """Builds one execution's clean history, event by event, as a single writer would."""

    execution_id: str
    pipeline_id: str
    rng: random.Random
    epoch: int = 1
    node: str = "node-1"
    sequence: int = 0
    clock: datetime = _EPOCH_START
    events: list[Envelope] = field(default_factory=list)

    def emit(self, payload: c.Payload, *, sequenced: bool = True) -> Envelope:
        """Append the next event of this execution (sequence + 1 unless a control event)."""
        self.clock += timedelta(milliseconds=self.rng.randint(1, 5000))
        if sequenced:
            self.sequence += 1
        event = Envelope(
            execution_id=self.execution_id,
            pipeline_id=self.pipeline_id,
            sequence=self.sequence if sequenced else None,
            epoch=self.epoch,
            payload=payload,
            producer=self.node,
            # Derived, not drawn from ``rng``: ids must not change the history a seed gives.
            event_id=str(uuid.uuid5(_ID_NAMESPACE, f"{self.execution_id}/{len(self.events)}")),
            occurred_at=self.clock,
        )
        self.events.append(event)
        return event

    def take_over(self) -> Envelope:
        """A new writer takes the lease: the epoch rises and ownership is recorded."""
        self.epoch += 1
        self.node = f"node-{self.epoch}"
        return self.emit(
            c.ExecutionOwnershipTaken(epoch=self.epoch, node_id=self.node), sequenced=False
        )


def simulate_execution(
    execution_id: str,
    rng: random.Random,
    *,
    pipeline_id: str = "research_assistant",
    tasks: int = 4,
    takeovers: bool = True,
    payload_bytes: int = 64,
) -> list[Envelope]:
    """One valid history: create, validate, run tasks (with failures, retries,
    checkpoints, pauses and writer takeovers), then finish, fail or cancel."""
    w = HistoryWriter(execution_id, pipeline_id, rng)
    names = [f"task_{i}" for i in range(tasks)]
    specs = tuple(
        c.TaskSpec(task_id=name, depends_on=(names[i - 1],) if i else ())
        for i, name in enumerate(names)
    )
    blob = "x" * payload_bytes
    w.emit(
        c.ExecutionCreated(
            pipeline_id=pipeline_id,
            context=c.ExecutionContext(
                user_id="user_123", input_data=encode_user_data({"q": blob})
            ),
            tasks=specs,
        )
    )
    w.emit(c.ExecutionValidationStarted())
    if rng.random() < 0.05:
        w.emit(c.ExecutionValidationFailed(error="invalid input"))
        return w.events
    w.emit(c.ExecutionValidationSucceeded())
    for name in names:
        if takeovers and rng.random() < 0.15:
            w.take_over()
        if rng.random() < 0.1:
            w.emit(c.ExecutionPaused(reason="operator"))
            if rng.random() < 0.2:
                w.emit(c.ExecutionCancelled(reason="operator"))
                return w.events
            w.emit(c.ExecutionResumed())
        w.emit(c.TaskScheduled(task_id=name))
        attempt = 1
        w.emit(c.TaskStarted(task_id=name, attempt=attempt, inputs=encode_user_data({"in": name})))
        while rng.random() < 0.2 and attempt < 3:
            w.emit(c.TaskFailed(task_id=name, attempt=attempt, error="rate limited"))
            attempt += 1
            w.emit(c.TaskRetryScheduled(task_id=name, attempt=attempt, delay_seconds=2.0**attempt))
            w.emit(c.TaskStarted(task_id=name, attempt=attempt))
        if rng.random() < 0.3:
            w.emit(
                c.CheckpointSaved(
                    checkpoint_id=f"{execution_id}-cp-{w.sequence + 1}",
                    name=f"after_{name}",
                    task_id=name,
                    data=encode_user_data({"partial": blob}),
                    progress=rng.random(),
                )
            )
        if rng.random() < 0.03:
            w.emit(c.TaskFailed(task_id=name, attempt=attempt, error="fatal", retryable=False))
            w.emit(c.ExecutionFailed(error=f"{name} failed"))
            return w.events
        w.emit(
            c.TaskCompleted(
                task_id=name,
                outputs=encode_user_data({"out": blob}),
                details=c.ExecutionDetails(
                    duration=rng.uniform(0.1, 200.0),
                    memory_used="512MB",
                    model_calls=rng.randint(0, 5),
                    tokens_used=rng.randint(0, 4000),
                ),
            )
        )
    w.emit(c.ExecutionCompleted(outputs=encode_user_data({"report": "done"})))
    return w.events


def interleave(histories: list[list[Envelope]], rng: random.Random) -> Iterator[Envelope]:
    """Merge histories randomly, keeping each one's own order (as one partition would)."""
    cursors = [0] * len(histories)
    live = [i for i, h in enumerate(histories) if h]
    while live:
        i = rng.choice(live)
        yield histories[i][cursors[i]]
        cursors[i] += 1
        if cursors[i] == len(histories[i]):
            live.remove(i)
