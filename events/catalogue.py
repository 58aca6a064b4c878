"""The event catalogue: one frozen dataclass per payload, named as its Avro record.

Field names and types match the ``.avsc`` files in ``schemas/`` one to one; the codec
turns these into Avro records and back. ``UserData`` fields carry opaque user data
(see ``events.userdata``). Times are timezone-aware UTC datetimes.

Each payload class is registered with :func:`event` (its kind and, for a status
change, the state machine's action), which also makes it a frozen dataclass named
by its ``event_type``; everything else that lists event types (the
codec's classes, the Envelope's payload union, the state machines' actions, the
shared, control and task sets, the task feed) is derived from :data:`CATALOGUE`.
A new event type is three places: its ``schemas/current/<Name>.avsc``, its class
here, and its fold case in ``events.fold``; ``python -m orchestrator.events.schemas
sync`` then writes the Envelope's payload union, and
``events.registry.check_catalogue`` refuses a type missing one of them.

Registration order is the order of the Envelope's payload union, which is on the
wire: a new type is appended at the end of this module.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import ClassVar, Literal, TypeVar, dataclass_transform

from orchestrator.events.userdata import UserData

EventKind = Literal["execution", "task", "checkpoint", "shared", "control"]
"""What an event is about: an execution's status, a task's status, its checkpoints,
a shared-state namespace (topic ``shared``), or the writer's lease (no sequence)."""


class Payload:
    """Base of every payload record; ``event_type`` is the Avro record's name."""

    __slots__ = ()
    event_type: ClassVar[str]


@dataclass(frozen=True, slots=True)
class EventSpec:
    """One catalogue entry: the payload class, its kind and its state-machine action."""

    cls: type[Payload]
    kind: EventKind
    action: str | None = None
    """The pipeline (kind ``execution``) or task (kind ``task``) machine's action it
    performs; ``None`` when its fold case decides (creation, resume, the others)."""

    @property
    def event_type(self) -> str:
        return self.cls.event_type


_CATALOGUE: dict[str, EventSpec] = {}
_P = TypeVar("_P", bound=Payload)


@dataclass_transform(frozen_default=True, kw_only_default=True)
def event(kind: EventKind, *, action: str | None = None) -> Callable[[type[_P]], type[_P]]:
    """Register a payload class in the catalogue, as a frozen, slotted, keyword-only
    dataclass whose ``event_type`` is its name (a class that is a dataclass already,
    or that names its own ``event_type``, is registered as it is)."""

    def register(cls: type[_P]) -> type[_P]:
        name = cls.__dict__.get("event_type", cls.__name__)
        if name != cls.__name__:
            raise TypeError(f"{cls.__name__}: event_type {name!r} must be the class name")
        if name in _CATALOGUE:
            raise TypeError(f"event type {name} registered twice")
        if action is not None and kind not in ("execution", "task"):
            raise TypeError(f"{name}: only execution and task events have an action")
        if "__dataclass_fields__" not in cls.__dict__:
            cls.event_type = name
            cls = dataclass(frozen=True, slots=True, kw_only=True)(cls)
        _CATALOGUE[name] = EventSpec(cls, kind, action)
        return cls

    return register


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


@event("execution")
class ExecutionCreated(Payload):
    """A new execution of a pipeline, with its task list; status ``initialized``."""

    pipeline_id: str
    context: ExecutionContext = field(default_factory=ExecutionContext)
    tasks: tuple[TaskSpec, ...] = ()
    forked_from: str | None = None
    fork_sequence: int | None = None
    root_execution_id: str | None = None


@event("execution", action="start")
class ExecutionValidationStarted(Payload):
    """``start``: initialized → validating."""


@event("execution", action="validation_success")
class ExecutionValidationSucceeded(Payload):
    """``validation_success``: validating → running."""


@event("execution", action="validation_failure")
class ExecutionValidationFailed(Payload):
    """``validation_failure``: validating → failed."""

    error: str


@event("execution", action="pause")
class ExecutionPaused(Payload):
    """``pause``: running → paused."""

    reason: str | None = None


@event("execution")
class ExecutionResumed(Payload):
    """``resume``: paused → running, or ``recover``: failed → running (resume after a crash)."""

    from_checkpoint: str | None = None
    reason: str | None = None


@event("execution", action="finish")
class ExecutionCompleted(Payload):
    """``finish``: running → completed."""

    outputs: UserData | None = None


@event("execution", action="error")
class ExecutionFailed(Payload):
    """``error``: running → failed."""

    error: str


@event("execution", action="cancel")
class ExecutionCancelled(Payload):
    """``cancel``: running or paused → cancelled."""

    reason: str | None = None


# --- task lifecycle ------------------------------------------------------------------


@event("task", action="schedule")
class TaskScheduled(Payload):
    """A task is ready to run (its dependencies completed)."""

    task_id: str


@event("task", action="start")
class TaskStarted(Payload):
    """An attempt of a task started, with its inputs."""

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


@event("task", action="complete")
class TaskCompleted(Payload):
    """A task attempt finished with outputs."""

    task_id: str
    outputs: UserData | None = None
    metadata: UserData | None = None
    details: ExecutionDetails = field(default_factory=ExecutionDetails)


@event("task", action="fail")
class TaskFailed(Payload):
    """A task attempt failed; ``retryable`` says whether recovery may try again."""

    task_id: str
    attempt: int
    error: str
    retryable: bool = True


@event("task", action="retry")
class TaskRetryScheduled(Payload):
    """A failed task will run again as ``attempt`` after ``delay_seconds``."""

    task_id: str
    attempt: int
    delay_seconds: float


@event("task", action="skip")
class TaskSkipped(Payload):
    """A task that will not run (already done before a fork or resume, or not needed)."""

    task_id: str
    reason: str | None = None


# --- checkpoints ---------------------------------------------------------------------


@event("checkpoint")
class CheckpointSaved(Payload):
    """A named checkpoint with its data (inline or claim-checked) and metadata."""

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


@event("checkpoint")
class CheckpointRestored(Payload):
    """The execution continued from a checkpoint."""

    checkpoint_id: str


# --- shared state --------------------------------------------------------------------


@event("shared")
class SharedVariableSet(Payload):
    """A shared variable was set; ``version`` counts its writes from 1."""

    namespace: str
    name: str
    type: str
    value: UserData | None
    immutable: bool = False
    updated_by: str | None = None
    version: int = 1


@event("shared")
class SharedVariableDeleted(Payload):
    """A shared variable was deleted."""

    namespace: str
    name: str
    deleted_by: str | None = None
    version: int = 1


# --- control -------------------------------------------------------------------------


@event("control")
class ExecutionOwnershipTaken(Payload):
    """A writer took the execution's lease at ``epoch``; older epochs are fenced off."""

    epoch: int
    node_id: str


# --- added in schema release v2 (appended: the order is the wire's) -----------------


@event("checkpoint")
class CheckpointWritesSaved(Payload):
    """Pending writes of one task against a saved checkpoint (LangGraph's ``put_writes``)."""

    checkpoint_id: str
    task_id: str
    task_path: str | None = None
    writes: UserData | None = None


@event("checkpoint")
class CheckpointsDeleted(Payload):
    """Checkpoints withdrawn from the execution's list; their events stay in history."""

    checkpoint_ids: tuple[str, ...]
    reason: str | None = None


# --- derived from the registrations above (append new types above this line) ----------

CATALOGUE: Mapping[str, EventSpec] = MappingProxyType(_CATALOGUE)
"""Every event type's entry, by name, in registration (= wire) order."""

PAYLOAD_TYPES: Mapping[str, type[Payload]] = MappingProxyType(
    {name: spec.cls for name, spec in CATALOGUE.items()}
)


def event_types(kind: EventKind) -> frozenset[str]:
    """The names of the event types of one kind."""
    return frozenset(name for name, spec in CATALOGUE.items() if spec.kind == kind)


def actions(kind: EventKind) -> Mapping[str, str]:
    """The state-machine action of each event type of ``kind`` that has one."""
    return MappingProxyType(
        {
            name: spec.action
            for name, spec in CATALOGUE.items()
            if spec.kind == kind and spec.action is not None
        }
    )


SHARED_EVENT_TYPES = event_types("shared")
CONTROL_EVENT_TYPES = event_types("control")
TASK_EVENT_TYPES = event_types("task")
