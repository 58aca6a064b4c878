"""``decide(state, command) -> [payload]``: the pure half of the write side.

A command is a request (``Pause``, ``CompleteTask``, ``SaveCheckpoint``...); the
events it produces are facts. ``decide`` turns one into the other *without I/O*, and
refuses a command the current state does not allow, before anything is written.

Decide and fold cannot disagree because decide asks the fold: it builds the candidate
envelopes at ``last_sequence + 1`` and runs :func:`events.fold.step` on them; any
outcome other than ``APPLIED`` becomes :class:`InvalidCommand`. So every event the
write side produces is one the projector, the snapshotter and replay will apply.

The commands themselves are in ``commands.command_types`` (re-exported here).
User data (inputs, outputs, checkpoint data...) may be given as a plain JSON value or
as an encoded :class:`~events.userdata.UserData`. ``decide`` encodes plain values
inline; a writer with a blob store first runs :func:`encode_fields` so large values
are claim-checked (that is I/O, so it stays out of here).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from orchestrator.commands._listed import is_listed
from orchestrator.commands.command_types import (
    Cancel,
    Command,
    Complete,
    CompleteTask,
    CreateExecution,
    DeleteCheckpoints,
    Fail,
    FailTask,
    FailValidation,
    GeneratedCheckpointId,
    Pause,
    RestoreCheckpoint,
    Resume,
    SaveCheckpoint,
    SaveCheckpointWrites,
    ScheduleRetry,
    ScheduleTask,
    SkipTask,
    StartTask,
    StartValidation,
    SucceedValidation,
)
from orchestrator.events import (
    ACTIVE_STATUSES,
    CheckpointRestored,
    CheckpointSaved,
    CheckpointsDeleted,
    CheckpointWritesSaved,
    Envelope,
    ExecutionCancelled,
    ExecutionCompleted,
    ExecutionContext,
    ExecutionCreated,
    ExecutionFailed,
    ExecutionPaused,
    ExecutionResumed,
    ExecutionState,
    ExecutionValidationFailed,
    ExecutionValidationStarted,
    ExecutionValidationSucceeded,
    InvalidTransition,
    Outcome,
    Payload,
    TaskCompleted,
    TaskFailed,
    TaskRetryScheduled,
    TaskScheduled,
    TaskSkipped,
    TaskSpec,
    TaskStarted,
    UserData,
    encode_user_data,
    step,
)

__all__ = [
    "Cancel",
    "Command",
    "Complete",
    "CompleteTask",
    "CreateExecution",
    "DeleteCheckpoints",
    "Fail",
    "FailTask",
    "FailValidation",
    "InvalidCommand",
    "Pause",
    "RestoreCheckpoint",
    "Resume",
    "SaveCheckpoint",
    "SaveCheckpointWrites",
    "ScheduleRetry",
    "ScheduleTask",
    "SkipTask",
    "StartTask",
    "StartValidation",
    "SucceedValidation",
    "candidates",
    "decide",
    "decide_stamped",
    "encode_fields",
    "evolve",
]


class InvalidCommand(InvalidTransition):
    """A command the execution's current state does not allow; nothing was written.

    An ``InvalidTransition`` (catch either) that also carries the execution, the
    command's name and the fold's reason.
    """

    def __init__(
        self,
        execution_id: str | None,
        subject: str,
        from_status: str | None,
        command: str,
        reason: str,
    ) -> None:
        super().__init__(subject, from_status, command)
        self.execution_id = execution_id
        self.command = command
        self.reason = reason
        self.args = (f"{subject}: cannot {command} from status {from_status!r}: {reason}",)


# --- decide --------------------------------------------------------------------------

_PLAIN: dict[type[Command], Callable[[Any], Payload]] = {
    StartValidation: lambda cmd: ExecutionValidationStarted(),
    SucceedValidation: lambda cmd: ExecutionValidationSucceeded(),
    FailValidation: lambda cmd: ExecutionValidationFailed(error=cmd.error),
    Pause: lambda cmd: ExecutionPaused(reason=cmd.reason),
    Fail: lambda cmd: ExecutionFailed(error=cmd.error),
    Cancel: lambda cmd: ExecutionCancelled(reason=cmd.reason),
    ScheduleTask: lambda cmd: TaskScheduled(task_id=cmd.task_id),
    SkipTask: lambda cmd: TaskSkipped(task_id=cmd.task_id, reason=cmd.reason),
    RestoreCheckpoint: lambda cmd: CheckpointRestored(checkpoint_id=cmd.checkpoint_id),
    SaveCheckpointWrites: lambda cmd: CheckpointWritesSaved(
        checkpoint_id=cmd.checkpoint_id,
        task_id=cmd.task_id,
        task_path=cmd.task_path,
        writes=_data(cmd.writes),
    ),
    DeleteCheckpoints: lambda cmd: CheckpointsDeleted(
        checkpoint_ids=tuple(cmd.checkpoint_ids), reason=cmd.reason
    ),
}


def _data(value: Any) -> UserData | None:
    if value is None or isinstance(value, UserData):
        return value
    return encode_user_data(value)


def encode_fields(command: Command, encode: Callable[[Any], UserData]) -> Command:
    """The command with its plain user-data values encoded by ``encode`` (e.g. with a
    blob store, so large values are claim-checked); encoded values are kept."""
    changes = {
        name: encode(value)
        for name in command.user_data_fields
        if (value := getattr(command, name)) is not None and not isinstance(value, UserData)
    }
    return replace(command, **changes) if changes else command


def _attempts(state: ExecutionState | None, task_id: str) -> int:
    task = None if state is None else state.tasks.get(task_id)
    return 0 if task is None else task.attempts


def _payloads(state: ExecutionState | None, command: Command) -> list[Payload]:
    maker = _PLAIN.get(type(command))
    if maker is not None:
        return [maker(command)]
    cmd: Any = command
    if isinstance(command, CreateExecution):
        return [
            ExecutionCreated(
                pipeline_id=command.pipeline_id,
                context=ExecutionContext(
                    user_id=command.user_id,
                    input_data=_data(command.input_data),
                    configuration=_data(command.configuration),
                ),
                tasks=tuple(
                    TaskSpec(task_id=t) if isinstance(t, str) else t for t in command.tasks
                ),
                forked_from=command.forked_from,
                fork_sequence=command.fork_sequence,
                root_execution_id=command.root_execution_id,
            )
        ]
    if isinstance(command, Resume):
        return [ExecutionResumed(from_checkpoint=cmd.from_checkpoint, reason=cmd.reason)]
    if isinstance(command, Complete):
        return [ExecutionCompleted(outputs=_data(command.outputs))]
    if isinstance(command, StartTask):
        attempt = cmd.attempt or _attempts(state, cmd.task_id) + 1
        return [
            TaskStarted(
                task_id=cmd.task_id, attempt=attempt, inputs=_data(cmd.inputs), node_id=cmd.node_id
            )
        ]
    if isinstance(command, CompleteTask):
        return [
            TaskCompleted(
                task_id=cmd.task_id,
                outputs=_data(cmd.outputs),
                metadata=_data(cmd.metadata),
                details=cmd.details,
            )
        ]
    if isinstance(command, FailTask):
        attempt = cmd.attempt or max(_attempts(state, cmd.task_id), 1)
        return [
            TaskFailed(
                task_id=cmd.task_id, attempt=attempt, error=cmd.error, retryable=cmd.retryable
            )
        ]
    if isinstance(command, ScheduleRetry):
        attempt = cmd.attempt or _attempts(state, cmd.task_id) + 1
        return [
            TaskRetryScheduled(
                task_id=cmd.task_id, attempt=attempt, delay_seconds=cmd.delay_seconds
            )
        ]
    if isinstance(command, SaveCheckpoint):
        return [
            CheckpointSaved(
                checkpoint_id=str(cmd.checkpoint_id),
                name=cmd.name,
                task_id=cmd.task_id,
                data=_data(cmd.data),
                metadata=_data(cmd.metadata),
                progress=cmd.progress,
                delta_base=cmd.delta_base,
                delta_from=cmd.delta_from,
            )
        ]
    raise TypeError(f"not a command: {command!r}")


def _refuse(state: ExecutionState | None, command: Command, reason: str) -> InvalidCommand:
    execution_id = getattr(command, "execution_id", None) if state is None else state.execution_id
    subject, status = f"execution {execution_id}", None if state is None else state.status
    task_id: str | None = getattr(command, "task_id", None)
    if (
        state is not None
        and state.status in ACTIVE_STATUSES
        and task_id is not None
        and task_id in state.tasks
    ):
        subject, status = f"task {task_id} of execution {execution_id}", state.tasks[task_id].status
    return InvalidCommand(execution_id, subject, status, type(command).__name__, reason)


# ``occurred_at`` does not influence whether the fold applies an event.
_NOW_PLACEHOLDER = datetime(1970, 1, 1, tzinfo=UTC)


def candidates(
    state: ExecutionState | None,
    payloads: Sequence[Payload],
    *,
    epoch: int | None = None,
    execution_id: str | None = None,
    pipeline_id: str | None = None,
) -> list[Envelope]:
    """Envelopes for ``payloads`` at the next sequences of ``state`` (for checking only:
    the writer stamps its own epoch, producer and time). ``execution_id`` and
    ``pipeline_id`` name a new execution (``state`` is ``None``)."""
    first = 1 if state is None else state.last_sequence + 1
    return [
        Envelope(
            execution_id=execution_id if state is None else state.execution_id,
            pipeline_id=pipeline_id if state is None else state.pipeline_id,
            sequence=first + i,
            epoch=epoch if epoch is not None else (1 if state is None else state.epoch),
            payload=payload,
            event_id=f"candidate-{i}",
            occurred_at=_NOW_PLACEHOLDER,
        )
        for i, payload in enumerate(payloads)
    ]


def _check(
    state: ExecutionState | None, command: Command, payloads: Sequence[Payload]
) -> ExecutionState | None:
    """Step the candidates through the fold; refuse unless every one is applied."""
    current = state
    for envelope in candidates(
        state,
        payloads,
        execution_id=command.execution_id if isinstance(command, CreateExecution) else None,
        pipeline_id=command.pipeline_id if isinstance(command, CreateExecution) else None,
    ):
        result = step(current, envelope)
        if result.outcome is not Outcome.APPLIED:
            raise _refuse(state, command, result.reason or result.outcome.value)
        current = result.state
    return current


def decide(state: ExecutionState | None, command: Command) -> list[Payload]:
    """The payloads ``command`` produces from ``state`` (``None``: no execution yet).

    Raises :class:`InvalidCommand` when the fold would not apply them.
    """
    payloads = _decided(state, command)
    _check(state, command, payloads)
    return payloads


Stamp = Callable[[ExecutionState | None, Sequence[Payload]], list[Envelope]]
"""A writer's envelopes for payloads decided from a state (its epoch, producer, time)."""


def decide_stamped(
    state: ExecutionState | None, command: Command, stamp: Stamp
) -> tuple[list[Envelope], ExecutionState | None]:
    """``decide`` for a writer: the payloads in the writer's own envelopes, folded once.

    That one fold both checks them (:class:`InvalidCommand` unless every one is
    applied, as ``decide``) and gives the state after them, where ``decide`` folds
    placeholder envelopes and the writer would fold its real ones a second time.
    """
    envelopes = stamp(state, _decided(state, command))
    current = state
    for envelope in envelopes:
        result = step(current, envelope)
        if result.outcome is not Outcome.APPLIED:
            raise _refuse(state, command, result.reason or result.outcome.value)
        current = result.state
    return envelopes, current


def _decided(state: ExecutionState | None, command: Command) -> list[Payload]:
    """``decide`` before the fold's check."""
    if state is None and not isinstance(command, CreateExecution):
        raise _refuse(state, command, "the execution does not exist")
    if state is not None and isinstance(command, CreateExecution):
        raise _refuse(state, command, "the execution already exists")
    if isinstance(command, Resume) and command.from_checkpoint is not None:
        known = state is not None and any(
            ref.checkpoint_id == command.from_checkpoint for ref in state.checkpoints
        )
        if not known:
            raise _refuse(state, command, f"unknown checkpoint {command.from_checkpoint!r}")
    if isinstance(command, SaveCheckpoint) and state is not None:
        if type(command.checkpoint_id) is not GeneratedCheckpointId:  # O(listed): not for uuid4s
            _refuse_listed(state, command)
    return _payloads(state, command)


def _refuse_listed(state: ExecutionState, command: SaveCheckpoint) -> None:
    """An id names one checkpoint of the list (``checkpoint.restore`` takes only the id):
    a save under an id still listed is refused, not listed twice. The fold keeps listing
    both saves of logs written before this check, so their restores stay as they were."""
    if is_listed(state, command.checkpoint_id):
        raise _refuse(
            state,
            command,
            f"checkpoint id {command.checkpoint_id!r} is already listed: delete it"
            " (DeleteCheckpoints) before saving it again, or save under a new id",
        )


def evolve(state: ExecutionState | None, commands: Sequence[Command]) -> ExecutionState | None:
    """Decide ``commands`` one after another (all or nothing); the state they lead to.

    Raises :class:`InvalidCommand` for the first command that is not allowed.
    """
    for command in commands:
        state = _check(state, command, decide(state, command))
    return state
