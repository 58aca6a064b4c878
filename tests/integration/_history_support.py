"""Helpers of the history tests (replay, trace, check, fork, timeline).

Histories are valid by construction (``events.simulate``), appended to the stack's
real topic, folded by the stack's real processor; references are the pure fold over
what the log holds.
"""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

import asyncpg
from _state_stack import Stack
from typer.testing import CliRunner, Result

from orchestrator.cli import app
from orchestrator.events import ArchivedEvent
from orchestrator.events import catalogue as c
from orchestrator.events.envelope import Envelope, Position
from orchestrator.events.fold import step
from orchestrator.events.simulate import HistoryWriter
from orchestrator.events.state import ExecutionState
from orchestrator.events.userdata import encode_user_data
from orchestrator.snapshots import SnapshotStore, SnapshotWriter
from orchestrator.snapshots.postgres import PostgresSnapshotIndex
from orchestrator.snapshots.writer import PendingSnapshot
from tests.histories import fold_to_sequence


def history(
    execution_id: str, events: int, *, seed: int = 1, pipeline_id: str = "p", tasks: int = 50
) -> list[Envelope]:
    """A valid history of exactly ``events`` events: ``tasks`` chained tasks run in turn
    with retries, checkpoints, pauses and writer takeovers, cut after ``events``."""
    rng = random.Random(seed)
    w = HistoryWriter(execution_id, pipeline_id, rng)
    names = [f"task_{i}" for i in range(tasks)]
    w.emit(
        c.ExecutionCreated(
            pipeline_id=pipeline_id,
            context=c.ExecutionContext(user_id="user_1", input_data=encode_user_data({"q": 1})),
            tasks=tuple(
                c.TaskSpec(task_id=n, depends_on=(names[i - 1],) if i else ())
                for i, n in enumerate(names)
            ),
        )
    )
    w.emit(c.ExecutionValidationStarted())
    w.emit(c.ExecutionValidationSucceeded())
    per_task = max(3, 2 * events // tasks)
    for name in names:
        w.emit(c.TaskScheduled(task_id=name))
        attempt = 1
        w.emit(c.TaskStarted(task_id=name, attempt=1, inputs=encode_user_data({"in": name})))
        budget = len(w.events) + rng.randint(per_task // 2, per_task * 3 // 2)
        while len(w.events) < budget:
            roll = rng.random()
            if roll < 0.1:
                w.take_over()
            elif roll < 0.2:
                w.emit(c.ExecutionPaused(reason="operator"))
                w.emit(c.ExecutionResumed(reason="operator"))
            elif roll < 0.4:
                w.emit(
                    c.CheckpointSaved(
                        checkpoint_id=f"{execution_id}-cp-{len(w.events)}",
                        name=f"cp_{name}",
                        task_id=name,
                        data=encode_user_data({"partial": len(w.events)}),
                        progress=rng.random(),
                    )
                )
            else:
                w.emit(c.TaskFailed(task_id=name, attempt=attempt, error="rate limited"))
                attempt += 1
                w.emit(c.TaskRetryScheduled(task_id=name, attempt=attempt, delay_seconds=1.0))
                w.emit(c.TaskStarted(task_id=name, attempt=attempt))
        w.emit(
            c.TaskCompleted(
                task_id=name,
                outputs=encode_user_data({"out": name}),
                details=c.ExecutionDetails(duration=rng.uniform(0.1, 100.0), model_calls=1),
            )
        )
        if len(w.events) >= events:
            break
    else:
        w.emit(c.ExecutionCompleted(outputs=encode_user_data({"report": "done"})))
    assert len(w.events) >= events, f"raise tasks: only {len(w.events)} events"
    return w.events[:events]


def unique_ids(events: Sequence[Envelope], prefix: str = "") -> list[Envelope]:
    """The same events with random UUID event ids (the log is shared between tests)."""
    return [replace(e, event_id=str(uuid.uuid4())) for e in events]


async def append(stack: Stack, events: Sequence[Envelope], chunk: int = 2000) -> list[Position]:
    """Append in order and wait until the stack's processor has applied every event."""
    positions: list[Position] = []
    for start in range(0, len(events), chunk):
        positions += await stack.log.append_batch(events[start : start + chunk])
    last: dict[tuple[str, int], Position] = {}
    for p in positions:
        last[(p.topic, p.partition)] = p
    await stack.runtime.wait_for(last.values(), timeout=60)
    return positions


async def log_events(stack: Stack, execution_id: str, position: Position) -> list[ArchivedEvent]:
    """The execution's events as the log holds them (its partition, filtered by id)."""
    return [
        ArchivedEvent(p, e)
        for p, e in await stack.read_partition(position)
        if e.execution_id == execution_id
    ]


def at_sequence(events: Sequence[ArchivedEvent], sequence: int | None) -> ExecutionState | None:
    """Reference: the fold of the longest log prefix whose last_sequence stays <= sequence."""
    return fold_to_sequence((item.envelope for item in events), sequence)


async def write_snapshots(
    pool: asyncpg.Pool, store: SnapshotStore, events: Sequence[ArchivedEvent], every: int
) -> int:
    """A snapshot after every ``every`` events (as the snapshotter's policy would), indexed."""
    writer, index = SnapshotWriter(store), PostgresSnapshotIndex(pool)
    state: ExecutionState | None = None
    written = 0
    for i, item in enumerate(events, start=1):
        state = step(state, item.envelope).state
        if i % every == 0 and state is not None:
            record = await writer.write(
                PendingSnapshot(state, item.position, item.envelope.occurred_at)
            )
            await index.add([record])
            written += 1
    return written


async def cli(*args: Any) -> Result:
    """``orchestrator-state ARGS`` in a worker thread (the command runs its own event
    loop there while this one keeps the stack's processor running)."""
    runner = CliRunner()
    return await asyncio.to_thread(runner.invoke, app, [str(a) for a in args])
