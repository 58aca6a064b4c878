"""Fork: a new execution that starts from another one's state at a sequence or checkpoint.

The fork is an ordinary execution whose ``ExecutionCreated`` records its lineage
(``forked_from``, ``fork_sequence``, ``root_execution_id``). Its first events carry
over what was done before the fork point, so the runtime's resume
(``Orchestrator().resume_pipeline(execution_id=fork)``) skips that work:

* a task completed at the fork point is recorded as completed again (scheduled,
  started, ``TaskCompleted`` with the original outputs, bytes unchanged, and
  metadata ``{"fork": {...}, "metadata": <original>}``);
* a skipped task is skipped again; every other task (running, failed, retrying,
  pending at the fork point) starts over as pending;
* the checkpoints saved before the fork point are saved again (same name, task and
  data, a new id ``<fork id>:<original id>``), so a task that was mid-way resumes
  from its last checkpoint.

They are carried in their original order, so the fork's own history can be forked
again at any of them.

Every event is validated before anything is written (``commands.decide``), the
creation is one append and the carried events one more; the fork's writer releases
its lease at the end, so any node with the pipeline's code may run it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.commands import (
    Command,
    CompleteTask,
    CreateExecution,
    Pause,
    SaveCheckpoint,
    ScheduleTask,
    SkipTask,
    StartTask,
    StartValidation,
    SucceedValidation,
)
from orchestrator.debug.debugger import StateDebugger
from orchestrator.debug.errors import ForkError
from orchestrator.debug.replay import Target
from orchestrator.events import (
    CheckpointSaved,
    ExecutionCreated,
    ExecutionDetails,
    ExecutionState,
    Payload,
    Position,
    TaskCompleted,
    TaskSkipped,
    TaskSpec,
    UserData,
    chain_of,
    decode_user_data,
)
from orchestrator.state import StateRuntime, current_runtime, decode_chain

_COPIED = ("ExecutionCreated", "TaskCompleted", "TaskSkipped", "CheckpointSaved")


@dataclass(frozen=True, slots=True)
class ForkResult:
    """The new execution and what it carried over from the fork point."""

    execution_id: str
    pipeline_id: str
    forked_from: str
    fork_sequence: int
    root_execution_id: str
    status: str
    carried_tasks: tuple[str, ...]
    skipped_tasks: tuple[str, ...]
    pending_tasks: tuple[str, ...]
    copied_checkpoints: tuple[str, ...]
    position: Position
    """Where the fork's last written event sits (wait on it to read the fork back)."""


@dataclass(frozen=True, slots=True)
class ForkPlan:
    """The commands that create the fork, and what they carry."""

    create: CreateExecution
    commands: tuple[Command, ...]
    carried: tuple[str, ...]
    skipped: tuple[str, ...]
    checkpoints: tuple[str, ...]


def _plain(value: UserData | None) -> Any:
    return None if value is None else decode_user_data(value)


def _reached_running(state: ExecutionState) -> bool:
    if state.status in ("running", "paused", "completed", "cancelled"):
        return True
    return bool(state.checkpoints) or any(t.status != "pending" for t in state.tasks.values())


def plan_fork(
    source: ExecutionState,
    new_execution_id: str,
    *,
    originals: Sequence[Payload] = (),
    paused: bool = False,
    values: Mapping[str, Any] | None = None,
) -> ForkPlan:
    """The fork of ``source`` (the state at the fork point) as commands; pure.

    ``originals`` are the source's applied ``ExecutionCreated``, ``TaskCompleted``,
    ``TaskSkipped`` and ``CheckpointSaved`` payloads up to the fork point, in log order:
    they are carried over in that order with their user data as it is. Without them
    the decoded values of ``source`` are re-encoded, tasks first, then checkpoints.
    """
    lineage = {
        "forked_from": source.execution_id,
        "fork_sequence": source.last_sequence,
        "root_execution_id": source.root_execution_id or source.execution_id,
    }
    created = next((p for p in originals if isinstance(p, ExecutionCreated)), None)
    context: Mapping[str, Any] = source.context
    create = CreateExecution(
        execution_id=new_execution_id,
        pipeline_id=source.pipeline_id,
        tasks=[TaskSpec(task_id=t.task_id, depends_on=t.depends_on) for t in source.tasks.values()],
        user_id=created.context.user_id if created else context.get("user_id"),
        input_data=created.context.input_data if created else context.get("input_data"),
        configuration=created.context.configuration if created else context.get("configuration"),
        **lineage,  # type: ignore[arg-type]
    )
    if not _reached_running(source):
        validating = [StartValidation()] if source.status == "validating" else []
        return ForkPlan(create, tuple(validating), (), (), ())
    plan = _Carry(source, new_execution_id, lineage, values or {})
    for payload in originals:
        if isinstance(payload, TaskCompleted):
            plan.complete(payload.task_id, payload.outputs)
        elif isinstance(payload, TaskSkipped):
            plan.skip(payload.task_id)
        elif isinstance(payload, CheckpointSaved):
            plan.save(payload)
    for task in source.tasks.values():  # what ``originals`` did not name
        if task.status == "completed":
            plan.complete(task.task_id, None)
        elif task.status == "skipped":
            plan.skip(task.task_id)
    if paused:
        plan.commands.append(Pause(reason=f"forked from {source.execution_id}"))
    return ForkPlan(
        create, tuple(plan.commands), tuple(plan.carried), tuple(plan.skipped), tuple(plan.copied)
    )


class _Carry:
    """The carried commands, each task and checkpoint at most once."""

    def __init__(
        self,
        source: ExecutionState,
        new_id: str,
        lineage: dict[str, Any],
        values: Mapping[str, Any],
    ) -> None:
        self.source = source
        self.values = values  # checkpoint data stored as deltas, read whole
        self.new_id = new_id
        self.lineage = lineage
        self.kept = {ref.checkpoint_id for ref in source.checkpoints}
        self.commands: list[Command] = [StartValidation(), SucceedValidation()]
        self.carried: list[str] = []
        self.skipped: list[str] = []
        self.copied: list[str] = []

    def complete(self, task_id: str, outputs: UserData | None) -> None:
        task = self.source.tasks.get(task_id)
        if task is None or task.status != "completed" or task_id in self.carried:
            return
        self.commands += [
            ScheduleTask(task_id=task_id),
            StartTask(task_id=task_id, inputs=task.inputs, attempt=1),
            CompleteTask(
                task_id=task_id,
                outputs=outputs if outputs is not None else task.outputs,
                metadata={
                    "fork": {**self.lineage, "source_attempts": task.attempts},
                    "metadata": task.metadata,
                },
                details=ExecutionDetails(**dict(task.execution_details)),
            ),
        ]
        self.carried.append(task_id)

    def skip(self, task_id: str) -> None:
        task = self.source.tasks.get(task_id)
        if task is None or task.status != "skipped" or task_id in self.skipped:
            return
        reason = f"skipped in {self.source.execution_id}"
        self.commands.append(SkipTask(task_id=task_id, reason=reason))
        self.skipped.append(task_id)

    def save(self, saved: CheckpointSaved) -> None:
        if saved.checkpoint_id not in self.kept:
            return
        self.kept.discard(saved.checkpoint_id)
        new_id = f"{self.new_id}:{saved.checkpoint_id}"
        self.commands.append(
            SaveCheckpoint(
                checkpoint_id=new_id,
                name=saved.name,
                task_id=saved.task_id,
                data=self.values.get(saved.checkpoint_id, saved.data),
                metadata={
                    "fork": {**self.lineage, "source_checkpoint_id": saved.checkpoint_id},
                    "metadata": _plain(saved.metadata),
                },
                progress=saved.progress,
            )
        )
        self.copied.append(new_id)


async def _whole(rt: StateRuntime, payloads: Sequence[Payload]) -> dict[str, Any]:
    """The data of each checkpoint stored as a delta, read whole: a delta means nothing
    in the fork without its base (the fork's writer encodes it again, for the fork)."""
    saved = [p for p in payloads if isinstance(p, CheckpointSaved)]
    return {
        p.checkpoint_id: await decode_chain(
            chain_of(saved, p.checkpoint_id), rt.blob_store, rt.data_keys
        )
        for p in saved
        if p.delta_base is not None
    }


async def fork_execution(
    execution_id: str,
    *,
    at_sequence: int | None = None,
    checkpoint_id: str | None = None,
    new_execution_id: str | None = None,
    paused: bool = False,
    runtime: StateRuntime | None = None,
    debugger: StateDebugger | None = None,
) -> ForkResult:
    """Fork ``execution_id`` at ``at_sequence`` or ``checkpoint_id`` (default: its
    latest state) into a new execution; see the module docstring."""
    if at_sequence is not None and checkpoint_id is not None:
        raise ValueError("give at_sequence or checkpoint_id, not both")
    rt = runtime or current_runtime("fork_execution")
    debugger = debugger or StateDebugger(rt)
    target = Target(sequence=at_sequence, checkpoint=checkpoint_id)
    source = (await debugger.replay(execution_id, target)).state
    new_id = new_execution_id or f"{execution_id}-fork-{uuid.uuid4().hex[:8]}"
    if new_id == execution_id:
        raise ForkError(execution_id, "the fork needs a new execution id")
    originals = await debugger.archive.applied_events(execution_id, _COPIED, source.last_sequence)
    payloads = [item.envelope.payload for item in originals]
    plan = plan_fork(
        source, new_id, originals=payloads, paused=paused, values=await _whole(rt, payloads)
    )
    writer = await rt.create_execution(plan.create)
    try:
        positions = await writer.execute_many(plan.commands) if plan.commands else []
        rt.record(positions)
        state = writer.state
        position = positions[-1] if positions else writer.last_position
    finally:
        await rt.release_execution(new_id)
    assert position is not None
    return ForkResult(
        execution_id=new_id,
        pipeline_id=source.pipeline_id,
        forked_from=execution_id,
        fork_sequence=source.last_sequence,
        root_execution_id=plan.create.root_execution_id or execution_id,
        status=state.status,
        carried_tasks=plan.carried,
        skipped_tasks=plan.skipped,
        pending_tasks=tuple(state.pending_tasks),
        copied_checkpoints=plan.checkpoints,
        position=position,
    )
