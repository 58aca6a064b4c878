"""The event catalogue: one frozen dataclass per payload, named as its Avro record.

Field names and types match the ``.avsc`` files in ``schemas/`` one to one; the codec
turns these into Avro records and back. ``UserData`` fields carry opaque user data
(see ``events.userdata``). Times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from orchestrator.events.userdata import UserData

# --- execution lifecycle -------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskSpec:
    """A task declared when an execution is created, with the tasks it waits for."""

    task_id: str
    depends_on: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionContext:
    """The seed's pipeline ``context``: who asked, with what input and configuration."""

    user_id: str | None = None
    input_data: UserData | None = None
    configuration: UserData | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionCreated:
    """A new execution of a pipeline, with its task list; status ``initialized``."""

    event_type: ClassVar[str] = "ExecutionCreated"
    pipeline_id: str
    context: ExecutionContext = field(default_factory=ExecutionContext)
    tasks: tuple[TaskSpec, ...] = ()
    forked_from: str | None = None
    fork_sequence: int | None = None
    root_execution_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionValidationStarted:
    """``start``: initialized → validating."""

    event_type: ClassVar[str] = "ExecutionValidationStarted"


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionValidationSucceeded:
    """``validation_success``: validating → running."""

    event_type: ClassVar[str] = "ExecutionValidationSucceeded"


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionValidationFailed:
    """``validation_failure``: validating → failed."""

    event_type: ClassVar[str] = "ExecutionValidationFailed"
    error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionPaused:
    """``pause``: running → paused."""

    event_type: ClassVar[str] = "ExecutionPaused"
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionResumed:
    """``resume``: paused → running, or ``recover``: failed → running (resume after a crash)."""

    event_type: ClassVar[str] = "ExecutionResumed"
    from_checkpoint: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionCompleted:
    """``finish``: running → completed."""

    event_type: ClassVar[str] = "ExecutionCompleted"
    outputs: UserData | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionFailed:
    """``error``: running → failed."""

    event_type: ClassVar[str] = "ExecutionFailed"
    error: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionCancelled:
    """``cancel``: running or paused → cancelled."""

    event_type: ClassVar[str] = "ExecutionCancelled"
    reason: str | None = None


# --- task lifecycle ------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskScheduled:
    """A task is ready to run (its dependencies completed)."""

    event_type: ClassVar[str] = "TaskScheduled"
    task_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskStarted:
    """An attempt of a task started, with its inputs."""

    event_type: ClassVar[str] = "TaskStarted"
    task_id: str
    attempt: int
    inputs: UserData | None = None
    node_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionDetails:
    """The seed's ``execution_details`` of a completed task."""

    duration: float | None = None
    memory_used: str | None = None
    model_calls: int | None = None
    tokens_used: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskCompleted:
    """A task attempt finished with outputs."""

    event_type: ClassVar[str] = "TaskCompleted"
    task_id: str
    outputs: UserData | None = None
    metadata: UserData | None = None
    details: ExecutionDetails = field(default_factory=ExecutionDetails)


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskFailed:
    """A task attempt failed; ``retryable`` says whether recovery may try again."""

    event_type: ClassVar[str] = "TaskFailed"
    task_id: str
    attempt: int
    error: str
    retryable: bool = True


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskRetryScheduled:
    """A failed task will run again as ``attempt`` after ``delay_seconds``."""

    event_type: ClassVar[str] = "TaskRetryScheduled"
    task_id: str
    attempt: int
    delay_seconds: float


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskSkipped:
    """A task that will not run (already done before a fork or resume, or not needed)."""

    event_type: ClassVar[str] = "TaskSkipped"
    task_id: str
    reason: str | None = None


# --- checkpoints ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointSaved:
    """A named checkpoint with its data (inline or claim-checked) and metadata."""

    event_type: ClassVar[str] = "CheckpointSaved"
    checkpoint_id: str
    name: str
    task_id: str | None = None
    data: UserData | None = None
    metadata: UserData | None = None
    progress: float | None = None
    delta_base: str | None = None
    """Set when ``data`` is a delta (``events.delta``) against this earlier checkpoint's data."""
    delta_from: int | None = None
    """With ``delta_base``: the sequence of the checkpoint stored whole that the chain of
    deltas starts from (what a reader fetches: that event up to this one)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointRestored:
    """The execution continued from a checkpoint."""

    event_type: ClassVar[str] = "CheckpointRestored"
    checkpoint_id: str


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointWritesSaved:
    """Pending writes of one task against a saved checkpoint (LangGraph's ``put_writes``)."""

    event_type: ClassVar[str] = "CheckpointWritesSaved"
    checkpoint_id: str
    task_id: str
    task_path: str | None = None
    writes: UserData | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointsDeleted:
    """Checkpoints withdrawn from the execution's list; their events stay in history."""

    event_type: ClassVar[str] = "CheckpointsDeleted"
    checkpoint_ids: tuple[str, ...]
    reason: str | None = None


# --- shared state --------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class SharedVariableSet:
    """A shared variable was set; ``version`` counts its writes from 1."""

    event_type: ClassVar[str] = "SharedVariableSet"
    namespace: str
    name: str
    type: str
    value: UserData | None
    immutable: bool = False
    updated_by: str | None = None
    version: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class SharedVariableDeleted:
    """A shared variable was deleted."""

    event_type: ClassVar[str] = "SharedVariableDeleted"
    namespace: str
    name: str
    deleted_by: str | None = None
    version: int = 1


# --- control -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionOwnershipTaken:
    """A writer took the execution's lease at ``epoch``; older epochs are fenced off."""

    event_type: ClassVar[str] = "ExecutionOwnershipTaken"
    epoch: int
    node_id: str


Payload = (
    ExecutionCreated
    | ExecutionValidationStarted
    | ExecutionValidationSucceeded
    | ExecutionValidationFailed
    | ExecutionPaused
    | ExecutionResumed
    | ExecutionCompleted
    | ExecutionFailed
    | ExecutionCancelled
    | TaskScheduled
    | TaskStarted
    | TaskCompleted
    | TaskFailed
    | TaskRetryScheduled
    | TaskSkipped
    | CheckpointSaved
    | CheckpointRestored
    | SharedVariableSet
    | SharedVariableDeleted
    | ExecutionOwnershipTaken
    | CheckpointWritesSaved
    | CheckpointsDeleted
)

PAYLOAD_TYPES: dict[str, type[Payload]] = {
    cls.event_type: cls
    for cls in (
        ExecutionCreated,
        ExecutionValidationStarted,
        ExecutionValidationSucceeded,
        ExecutionValidationFailed,
        ExecutionPaused,
        ExecutionResumed,
        ExecutionCompleted,
        ExecutionFailed,
        ExecutionCancelled,
        TaskScheduled,
        TaskStarted,
        TaskCompleted,
        TaskFailed,
        TaskRetryScheduled,
        TaskSkipped,
        CheckpointSaved,
        CheckpointRestored,
        SharedVariableSet,
        SharedVariableDeleted,
        ExecutionOwnershipTaken,
        CheckpointWritesSaved,
        CheckpointsDeleted,
    )
}

SHARED_EVENT_TYPES = frozenset({"SharedVariableSet", "SharedVariableDeleted"})
CONTROL_EVENT_TYPES = frozenset({"ExecutionOwnershipTaken"})
