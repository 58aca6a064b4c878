"""The commands of the write side: requests (``Pause``, ``CompleteTask``,
``SaveCheckpoint``...) that ``commands.decide`` turns into events or refuses.

A command names its user-data fields (``user_data_fields``): plain JSON values or
encoded ``UserData``, encoded by the writer before ``decide`` runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from orchestrator.events import ExecutionDetails, TaskSpec, uuid4_hex


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """Base of every execution command; ``user_data_fields`` name the opaque values."""

    user_data_fields: ClassVar[tuple[str, ...]] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class CreateExecution(Command):
    """Create an execution of ``pipeline_id`` with its tasks (status ``initialized``)."""

    user_data_fields: ClassVar[tuple[str, ...]] = ("input_data", "configuration")
    execution_id: str
    pipeline_id: str
    tasks: Sequence[TaskSpec | str] = ()
    user_id: str | None = None
    input_data: Any = None
    configuration: Any = None
    forked_from: str | None = None
    fork_sequence: int | None = None
    root_execution_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class StartValidation(Command):
    """``start``: initialized → validating."""


@dataclass(frozen=True, slots=True, kw_only=True)
class SucceedValidation(Command):
    """``validation_success``: validating → running."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FailValidation(Command):
    """``validation_failure``: validating → failed."""

    error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Pause(Command):
    """``pause``: running → paused."""

    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Resume(Command):
    """``resume`` (paused → running) or ``recover`` (failed → running)."""

    from_checkpoint: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Complete(Command):
    """``finish``: running → completed."""

    user_data_fields: ClassVar[tuple[str, ...]] = ("outputs",)
    outputs: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Fail(Command):
    """``error``: running → failed."""

    error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Cancel(Command):
    """``cancel``: running or paused → cancelled."""

    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleTask(Command):
    """Mark a task ready to run."""

    task_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class StartTask(Command):
    """Start an attempt of a task; ``attempt`` defaults to the next one."""

    user_data_fields: ClassVar[tuple[str, ...]] = ("inputs",)
    task_id: str
    inputs: Any = None
    attempt: int | None = None
    node_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CompleteTask(Command):
    """Finish the running attempt of a task with its outputs."""

    user_data_fields: ClassVar[tuple[str, ...]] = ("outputs", "metadata")
    task_id: str
    outputs: Any = None
    metadata: Any = None
    details: ExecutionDetails = field(default_factory=ExecutionDetails)


@dataclass(frozen=True, slots=True, kw_only=True)
class FailTask(Command):
    """Fail the running attempt of a task; ``attempt`` defaults to the current one."""

    task_id: str
    error: str
    retryable: bool = True
    attempt: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ScheduleRetry(Command):
    """Run a failed task again after ``delay_seconds``; ``attempt`` defaults to the next."""

    task_id: str
    delay_seconds: float = 0.0
    attempt: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SkipTask(Command):
    """A task that will not run."""

    task_id: str
    reason: str | None = None


def _checkpoint_id() -> str:
    return f"ckpt_{uuid4_hex()}"


@dataclass(frozen=True, slots=True, kw_only=True)
class SaveCheckpoint(Command):
    """Record a named checkpoint with its data; the id is generated unless given."""

    user_data_fields: ClassVar[tuple[str, ...]] = ("data", "metadata")
    name: str
    task_id: str | None = None
    data: Any = None
    metadata: Any = None
    progress: float | None = None
    checkpoint_id: str = field(default_factory=lambda: GeneratedCheckpointId(_checkpoint_id()))
    delta_base: str | None = None
    """Set by the writer when ``data`` is encoded as a delta against that checkpoint."""
    delta_from: int | None = None
    """Set with ``delta_base``: the sequence of the chain's whole copy."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RestoreCheckpoint(Command):
    """Record that the execution continues from a checkpoint it saved."""

    checkpoint_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class SaveCheckpointWrites(Command):
    """Record pending writes of one task against a saved checkpoint."""

    user_data_fields: ClassVar[tuple[str, ...]] = ("writes",)
    checkpoint_id: str
    task_id: str
    task_path: str | None = None
    writes: Any = None


@dataclass(frozen=True, slots=True, kw_only=True)
class DeleteCheckpoints(Command):
    """Withdraw checkpoints from the execution's list (history keeps their events)."""

    checkpoint_ids: Sequence[str]
    reason: str | None = None


class GeneratedCheckpointId(str):
    """A checkpoint id ``SaveCheckpoint`` made from a uuid4: unique, so ``decide`` does not
    look for it in the execution's list (only a hand-given id can be listed already)."""

    __slots__ = ()
