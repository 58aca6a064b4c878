"""Checkpoints a run reads and writes by itself: a task's last one, and automatic ones.

``last(task_id)`` is what ``context.last_checkpoint`` holds: the newest checkpoint the
task saved (its data read back from the read model once it has applied the writer's
last event, claim-checked data fetched and verified), or the checkpoint handed to
``resume_pipeline(from_checkpoint=)`` unless the task saved a newer one since.

Automatic checkpoints are named ``auto/<strategy>[/<task>]`` with metadata
``{"automatic": true, "strategy": ...}``; their data is the execution's progress, or,
for a periodic checkpoint of a running task, that task's ``context.state``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.commands import (
    Command,
    ExecutionNotOwned,
    ExecutionWriter,
    LeaseLost,
    SaveCheckpoint,
)
from orchestrator.events import CheckpointRef, InvalidTransition, from_fields
from orchestrator.projections import checkpoint_plain_value
from orchestrator.runtime.context import TaskContext
from orchestrator.state import RestoredCheckpoint, StateRuntime, decode_chain

AUTO_PREFIX = "auto/"


def plain(value: Any) -> Any:
    """The value as it will read back from state (JSON round trip, datetimes as str)."""
    return json.loads(json.dumps(value, default=str))


@dataclass(eq=False)
class Checkpoints:
    """The checkpoint side of one ``ExecutionRun``."""

    writer: ExecutionWriter
    runtime: StateRuntime
    do: Callable[[Command], Awaitable[None]]
    from_checkpoint: RestoredCheckpoint | None
    contexts: Mapping[str, TaskContext]

    async def last(self, tid: str) -> tuple[CheckpointRef | None, Any]:
        """The task's newest checkpoint and its data."""
        refs = [r for r in self.writer.state.checkpoints if r.task_id == tid]
        given = self.from_checkpoint
        if given is not None and given.task_id == tid:
            newer = [r for r in refs if r.sequence > given.sequence]
            if not newer:
                ref = next((r for r in refs if r.checkpoint_id == given.id), None)
                return ref or _ref_of(given), given.data
        if not refs:
            return None, None
        ref = refs[-1]
        return ref, await self.data(ref)

    async def data(self, ref: CheckpointRef) -> Any:
        rt = self.runtime
        if self.writer.last_position is not None:
            await rt.read_model.wait_for(self.writer.last_position, rt.settings.read_timeout)
        at = (self.writer.execution_id, ref.sequence)  # its own save, not another's of the id
        chain = await rt.read_model.checkpoint_chain(ref.checkpoint_id, at) or []
        if len(chain) > 1:  # stored as deltas: applied from the whole copy on
            return await decode_chain(chain, rt.blob_store, rt.data_keys)
        value = checkpoint_plain_value(chain) if chain else None
        return await rt.open_value(value, self.writer.execution_id)

    async def save_auto(self, strategy: str, tid: str | None, data: Any = None) -> None:
        state = self.writer.state
        if data is None:
            data = {"completed_tasks": list(state.completed_tasks), "progress": state.progress}
        name = f"{AUTO_PREFIX}{strategy}" + (f"/{tid}" if tid and strategy != "periodic" else "")
        await self.do(
            SaveCheckpoint(
                name=name,
                task_id=tid,
                data=plain(data),
                metadata={"automatic": True, "strategy": strategy},
                progress=state.progress,
            )
        )

    async def periodic(self, interval: float) -> None:
        """Every ``interval``: each running task's ``context.state`` if it changed (as a
        checkpoint of that task), else one execution-level checkpoint if anything moved."""
        last_sequence = self.writer.state.last_sequence
        saved_states: dict[str, Any] = {}
        while True:
            await asyncio.sleep(interval)
            try:
                wrote = False
                for tid, context in list(self.contexts.items()):
                    current = plain(context.state)
                    if current and current != saved_states.get(tid):
                        await self.save_auto("periodic", tid, current)
                        saved_states[tid] = current
                        wrote = True
                if not wrote and self.writer.state.last_sequence != last_sequence:
                    await self.save_auto("periodic", None)
                last_sequence = self.writer.state.last_sequence
            except InvalidTransition:
                return  # the execution ended between the check and the save
            except (LeaseLost, ExecutionNotOwned):
                return  # the task loop hits the same error and stops the run


def is_task_state(ref: CheckpointRef | None, data: Any) -> bool:
    """A periodic checkpoint of a task holds its ``context.state``: hand it back."""
    return ref is not None and ref.name == f"{AUTO_PREFIX}periodic" and isinstance(data, dict)


def _ref_of(restored: RestoredCheckpoint) -> CheckpointRef:
    """The reference the state lists for ``restored`` (name, task, sequence, progress)."""
    return from_fields(
        CheckpointRef, restored, checkpoint_id=restored.id, timestamp=restored.created_at
    )
