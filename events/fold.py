"""The pure fold: ``state = apply(state, event)``, the one function every reader uses.

The projector, the snapshotter, restore, replay and ``check`` all fold with
:func:`step`, so they reach the same verdict on every record and a restored state
always equals the read model. Each step first applies the rules of design §3, then
the state machines:

* A sequenced event already applied (the same ``event_id`` at its sequence) is a
  ``DUPLICATE``: dropped, state unchanged.
* ``ExecutionOwnershipTaken(e)`` raises the execution's epoch to ``e``; any later
  event with a lower epoch is a zombie write and is dropped (``STALE_EPOCH``).
* A sequenced event must carry ``last_sequence + 1``; another record at a sequence
  already taken (another ``event_id``) or beyond the next one is ``REJECTED``.
* An event the state machines refuse, or whose user data cannot be read (corrupt,
  over a limit), is ``REJECTED``. A rejected event never takes a sequence: the
  genuine event with that sequence still applies when it comes. Callers send
  rejected events to the dead-letter queue: nothing is dropped silently.

The fold is total: whatever an envelope holds, :func:`step` returns a verdict and
never raises.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from orchestrator.events import catalogue as c
from orchestrator.events._fold_base import (
    Outcome,
    Refused,
    Step,
    data,
    new_step,
    replace,
    summary,
)
from orchestrator.events.envelope import Envelope
from orchestrator.events.errors import OrchestratorStateError
from orchestrator.events.machines import (
    ACTIVE_STATUSES,
    PIPELINE_ACTIONS,
    PIPELINE_MACHINE,
    TASK_ACTIONS,
    TASK_MACHINE,
)
from orchestrator.events.state import (
    AppliedIds,
    CheckpointRef,
    ExecutionState,
    NamespaceState,
    SharedVariable,
    TaskState,
)

__all__ = [
    "MAX_EPOCH",
    "SHARED_CASES",
    "Outcome",
    "Step",
    "apply",
    "fold",
    "folded_types",
    "step",
    "step_shared",
]

MAX_EPOCH = 2**62
"""Epochs above this are refused: a takeover must always be able to go higher."""

# --- execution events ----------------------------------------------------------------


def step(state: ExecutionState | None, event: Envelope) -> Step:
    """Fold one execution-scoped event into ``state`` (``None`` before creation).

    Total: corrupt user data, an unknown payload or a refused transition come back as
    ``REJECTED`` with the reason, and ``state`` unchanged."""
    try:
        return _step(state, event)
    except OrchestratorStateError as exc:
        reason = str(exc) if isinstance(exc, Refused) else f"{type(exc).__name__}: {exc}"
        return new_step(state, Outcome.REJECTED, reason)
    except (AttributeError, TypeError, ValueError, RecursionError) as exc:
        # An envelope no codec would produce (built in memory with wrong types).
        return new_step(state, Outcome.REJECTED, f"malformed {event.event_type!s}: {exc}")


def _step(state: ExecutionState | None, event: Envelope) -> Step:
    payload = event.payload
    if not 0 <= event.epoch <= MAX_EPOCH:
        return new_step(state, Outcome.REJECTED, f"epoch {event.epoch} out of range")
    if isinstance(payload, c.ExecutionOwnershipTaken):
        return _take_ownership(state, event, payload)
    seq = event.sequence
    if state is None:
        if not isinstance(payload, c.ExecutionCreated):
            return new_step(None, Outcome.REJECTED, f"{event.event_type} for unknown execution")
        if seq != 1:
            return new_step(None, Outcome.REJECTED, f"ExecutionCreated at sequence {seq}")
        return new_step(_created(event, payload), Outcome.APPLIED)
    if seq is None:
        return new_step(state, Outcome.REJECTED, f"{event.event_type} without a sequence")
    last = state.last_sequence
    taken_by = state.applied.get(seq) if seq <= last else None
    if seq <= last and (taken_by is None or taken_by == event.event_id):
        return new_step(state, Outcome.DUPLICATE, f"sequence {seq} already applied")
    if event.epoch < state.epoch:
        return new_step(state, Outcome.STALE_EPOCH, f"epoch {event.epoch} < {state.epoch}")
    if taken_by is not None:
        # Another record at a taken sequence: not a duplicate, and it takes nothing.
        return new_step(
            state, Outcome.REJECTED, f"sequence {seq} is already taken by event {taken_by}"
        )
    if seq != last + 1:
        return new_step(state, Outcome.REJECTED, f"sequence gap: got {seq}, expected {last + 1}")
    # One copy per event: the transition returns its changes, applied with the
    # sequence, epoch and event id; a refused one raises and changes nothing.
    changes = _transition(state, event)
    return new_step(
        replace(
            state,
            last_sequence=seq,
            epoch=max(state.epoch, event.epoch),
            applied=state.applied.add(seq, event.event_id),
            **changes,
        ),
        Outcome.APPLIED,
    )


def apply(state: ExecutionState | None, event: Envelope) -> ExecutionState | None:
    """``step`` without the verdict: the state after ``event``."""
    return step(state, event).state  # type: ignore[no-any-return]


def fold(events: Any, state: ExecutionState | None = None) -> ExecutionState | None:
    """Fold an iterable of envelopes from ``state`` (default: nothing yet)."""
    for event in events:
        state = step(state, event).state
    return state


def _take_ownership(
    state: ExecutionState | None, event: Envelope, payload: c.ExecutionOwnershipTaken
) -> Step:
    if state is None:
        return new_step(None, Outcome.REJECTED, "ownership taken of an unknown execution")
    if event.epoch < state.epoch:  # a zombie's write
        return new_step(state, Outcome.STALE_EPOCH, f"epoch {event.epoch} < {state.epoch}")
    if payload.epoch <= state.epoch:
        return new_step(
            state, Outcome.STALE_EPOCH, f"ownership epoch {payload.epoch} <= {state.epoch}"
        )
    if payload.epoch != event.epoch:
        return new_step(
            state,
            Outcome.REJECTED,
            f"ownership epoch {payload.epoch} differs from its envelope's epoch {event.epoch}",
        )
    return new_step(replace(state, epoch=payload.epoch, owner=payload.node_id), Outcome.APPLIED)


def _created(event: Envelope, p: c.ExecutionCreated) -> ExecutionState:
    tasks = {
        spec.task_id: TaskState(task_id=spec.task_id, depends_on=tuple(spec.depends_on))
        for spec in p.tasks
    }
    context = {
        "user_id": p.context.user_id,
        "input_data": data(p.context.input_data),
        "configuration": data(p.context.configuration),
    }
    return ExecutionState(
        execution_id=event.execution_id or "",
        pipeline_id=p.pipeline_id,
        epoch=event.epoch,
        owner=event.producer or None,
        last_sequence=1,
        created_at=event.occurred_at,
        updated_at=event.occurred_at,
        context=context,
        tasks=tasks,
        forked_from=p.forked_from,
        fork_sequence=p.fork_sequence,
        root_execution_id=p.root_execution_id or event.execution_id,
        applied=AppliedIds([event.event_id]),
        **summary(tasks),
    )


# One fold case per execution-scoped event type: the fields it changes in the state,
# or ``Refused``. Status changes declared in the catalogue (an ``action``) share the
# machine-driven cases below; every other type registers its own with ``@_case``.
# Task and checkpoint events apply only while the execution is active.
Case = Callable[[ExecutionState, Envelope], dict[str, Any]]
_CASES: dict[type[c.Payload], tuple[Case, bool]] = {}
_ACTIVE_ONLY_KINDS = frozenset({"task", "checkpoint"})


def _case(*types: type[c.Payload]) -> Callable[[Case], Case]:
    """Register ``fn`` as the fold case of ``types``."""

    def register(fn: Case) -> Case:
        for cls in types:
            kind = c.CATALOGUE[cls.event_type].kind
            _CASES[cls] = (fn, kind in _ACTIVE_ONLY_KINDS)
        return fn

    return register


def _transition(state: ExecutionState, event: Envelope) -> dict[str, Any]:
    """The fields ``event`` changes in ``state``; ``Refused`` if it may not happen."""
    entry = _CASES.get(type(event.payload))
    if entry is None or (entry[1] and state.status not in ACTIVE_STATUSES):
        name = event.event_type
        if state.status not in ACTIVE_STATUSES:
            raise Refused(
                f"execution {state.execution_id}: cannot record {name} while {state.status!r}"
            )
        raise Refused(f"{name} is not an execution event")
    return entry[0](state, event)


@_case(c.ExecutionCreated)
def _created_again(state: ExecutionState, event: Envelope) -> dict[str, Any]:
    raise Refused(f"execution {state.execution_id} already exists")


@_case(c.ExecutionResumed)
def _resumed(state: ExecutionState, event: Envelope) -> dict[str, Any]:
    action = "recover" if state.status == "failed" else "resume"
    subject = f"execution {state.execution_id}"
    return {
        "status": PIPELINE_MACHINE.next(state.status, action, subject=subject),
        "updated_at": event.occurred_at,
        "error": None,
        "completed_at": None,
    }


def _pipeline_action(state: ExecutionState, event: Envelope) -> dict[str, Any]:
    """An execution event with a pipeline action (``PIPELINE_ACTIONS``)."""
    payload = event.payload
    at = event.occurred_at
    subject = f"execution {state.execution_id}"
    action = PIPELINE_ACTIONS[event.event_type]
    status = PIPELINE_MACHINE.next(state.status, action, subject=subject)
    changes: dict[str, Any] = {"status": status, "updated_at": at}
    if status == "validating":
        changes["started_at"] = at
    if status in PIPELINE_MACHINE.terminal:
        changes["completed_at"] = at
        changes["current_task"] = None
    if isinstance(payload, c.ExecutionValidationFailed | c.ExecutionFailed):
        changes["error"] = payload.error
    if isinstance(payload, c.ExecutionCompleted):
        changes["outputs"] = data(payload.outputs)
    return changes


def _task_event(state: ExecutionState, event: Envelope) -> dict[str, Any]:
    """A task event with a task action (``TASK_ACTIONS``)."""
    tasks = _task_step(state, event)
    return {"tasks": tasks, "updated_at": event.occurred_at, **summary(tasks)}


@_case(c.CheckpointSaved)
def _checkpoint_saved(state: ExecutionState, event: Envelope) -> dict[str, Any]:
    payload = event.payload
    assert isinstance(payload, c.CheckpointSaved)
    if payload.task_id is not None and payload.task_id not in state.tasks:
        raise Refused(
            f"execution {state.execution_id}: checkpoint for unknown task {payload.task_id!r}"
        )
    ref = CheckpointRef(
        checkpoint_id=payload.checkpoint_id,
        name=payload.name,
        task_id=payload.task_id,
        timestamp=event.occurred_at,
        sequence=event.sequence or 0,
        progress=payload.progress,
    )
    return {"checkpoints": (*state.checkpoints, ref), "updated_at": event.occurred_at}


@_case(c.CheckpointRestored)
def _checkpoint_restored(state: ExecutionState, event: Envelope) -> dict[str, Any]:
    payload = event.payload
    assert isinstance(payload, c.CheckpointRestored)
    if all(ref.checkpoint_id != payload.checkpoint_id for ref in state.checkpoints):
        raise Refused(
            f"execution {state.execution_id}: unknown checkpoint {payload.checkpoint_id!r}"
        )
    return {"updated_at": event.occurred_at}


@_case(c.CheckpointWritesSaved)
def _checkpoint_writes_saved(state: ExecutionState, event: Envelope) -> dict[str, Any]:
    return {"updated_at": event.occurred_at}


@_case(c.CheckpointsDeleted)
def _checkpoints_deleted(state: ExecutionState, event: Envelope) -> dict[str, Any]:
    payload = event.payload
    assert isinstance(payload, c.CheckpointsDeleted)
    gone = frozenset(payload.checkpoint_ids)
    kept = tuple(ref for ref in state.checkpoints if ref.checkpoint_id not in gone)
    return {"checkpoints": kept, "updated_at": event.occurred_at}


def _task_step(state: ExecutionState, event: Envelope) -> dict[str, TaskState]:
    payload: Any = event.payload
    task_id: str = payload.task_id
    task = state.tasks.get(task_id)
    subject = f"task {task_id} of execution {state.execution_id}"
    if task is None:
        raise Refused(f"{subject}: unknown task")
    status = TASK_MACHINE.next(task.status, TASK_ACTIONS[event.event_type], subject=subject)
    at: datetime = event.occurred_at
    changes: dict[str, Any] = {"status": status}
    if isinstance(payload, c.TaskStarted):
        if payload.attempt <= task.attempts:
            raise Refused(f"{subject}: attempt {payload.attempt} after {task.attempts}")
        changes.update(
            attempts=payload.attempt,
            started_at=at,
            completed_at=None,
            inputs=data(payload.inputs),
            error=None,
            retry_delay_seconds=None,
        )
    elif isinstance(payload, c.TaskCompleted):
        d = payload.details
        changes.update(
            completed_at=at,
            outputs=data(payload.outputs),
            metadata=data(payload.metadata),
            execution_details={
                "duration": d.duration,
                "memory_used": d.memory_used,
                "model_calls": d.model_calls,
                "tokens_used": d.tokens_used,
            },
        )
    elif isinstance(payload, c.TaskFailed):
        changes.update(completed_at=at, error=payload.error, retryable=payload.retryable)
    elif isinstance(payload, c.TaskRetryScheduled):
        changes.update(retry_delay_seconds=payload.delay_seconds)
    elif isinstance(payload, c.TaskSkipped):
        changes.update(completed_at=at, error=payload.reason)
    tasks = dict(state.tasks)
    tasks[task_id] = replace(task, **changes)
    return tasks


# --- shared-state events -------------------------------------------------------------

SHARED_CASES = (c.SharedVariableSet, c.SharedVariableDeleted)
"""The shared-state event types :func:`step_shared` folds."""


def step_shared(state: NamespaceState | None, event: Envelope) -> Step:
    """Fold one shared-state event; version and immutability are checked here too."""
    payload = event.payload
    if not isinstance(payload, SHARED_CASES):
        return new_step(state, Outcome.REJECTED, f"{event.event_type} is not a shared-state event")
    ns = state or NamespaceState(namespace=payload.namespace)
    current = ns.variables.get(payload.name)
    expected = 1 if current is None else current.version + 1
    where = f"variable {payload.namespace}/{payload.name}"
    if current is not None and payload.version <= current.version:
        return new_step(
            state, Outcome.DUPLICATE, f"{where}: version {payload.version} already applied"
        )
    if payload.version != expected:
        return new_step(
            state, Outcome.REJECTED, f"{where}: version {payload.version} != {expected}"
        )
    if current is not None and current.immutable and not current.deleted:
        return new_step(state, Outcome.REJECTED, f"{where} is immutable")
    variables = dict(ns.variables)
    if isinstance(payload, c.SharedVariableSet):
        variables[payload.name] = SharedVariable(
            name=payload.name,
            type=payload.type,
            value=data(payload.value),
            immutable=payload.immutable,
            updated_by=payload.updated_by,
            updated_at=event.occurred_at,
            version=payload.version,
        )
    else:
        if current is None or current.deleted:
            return new_step(state, Outcome.REJECTED, f"{where} does not exist")
        variables[payload.name] = replace(
            current,
            deleted=True,
            value=None,
            updated_by=payload.deleted_by,
            updated_at=event.occurred_at,
            version=payload.version,
        )
    return new_step(replace(ns, variables=variables), Outcome.APPLIED)


# --- which event types the fold has a case for ----------------------------------------

for _spec in c.CATALOGUE.values():  # the status changes declared in the catalogue
    if _spec.action is not None and _spec.cls not in _CASES:
        if _spec.kind == "task":
            _CASES[_spec.cls] = (_task_event, True)
        else:
            _CASES[_spec.cls] = (_pipeline_action, False)


def folded_types() -> frozenset[type[c.Payload]]:
    """Every payload type the fold has a case for (``events.registry`` checks the
    catalogue against it)."""
    return frozenset(_CASES) | frozenset(SHARED_CASES) | {c.ExecutionOwnershipTaken}
