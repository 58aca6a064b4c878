"""What the fold's steps share: the verdict types, user data decoding, the compiled
copy of the frozen states and the seed's task summary (``events.fold`` is the fold)."""

from __future__ import annotations

import dataclasses
import enum
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from orchestrator.events._slots import constructor, plain_slot_fields, slot_builder
from orchestrator.events.errors import OrchestratorStateError
from orchestrator.events.state import TaskState
from orchestrator.events.userdata import NOT_PLAIN, UserData, decode_user_data, plain_json

_loads = json.loads


class Outcome(enum.Enum):
    """What a fold step did with an event."""

    APPLIED = "applied"
    DUPLICATE = "duplicate"
    STALE_EPOCH = "stale_epoch"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class Step:
    """The state after one event, what happened to the event, and why if refused."""

    state: Any
    outcome: Outcome
    reason: str | None = None

    @property
    def applied(self) -> bool:
        return self.outcome is Outcome.APPLIED


new_step: Callable[..., Step] = constructor(Step)
"""``Step(state, outcome, reason=None)`` without the frozen ``__init__`` (every event)."""


class Refused(OrchestratorStateError):
    """Internal: the event is not allowed from the current state."""


def data(value: UserData | None) -> Any:
    if value is None:
        return None
    parsed = plain_json(value)
    return decode_user_data(value) if parsed is NOT_PLAIN else parsed


# --- copying frozen states -----------------------------------------------------------

_T = TypeVar("_T")
_REPLACERS: dict[tuple[type, tuple[str, ...]], Callable[..., Any]] = {}


def _compile_replacer(cls: type, changed: tuple[str, ...]) -> Callable[..., Any]:
    """``dataclasses.replace`` for one frozen slots dataclass and one set of changed
    fields, compiled (a hot path: the generic one costs several times as much, and
    every event copies the state; the fold changes a handful of field sets).

    Same result: a new instance with every field copied except the ones given, built
    without ``__init__`` (which, with no ``__post_init__`` and every field an init
    field, only assigns the fields). Any other class, or a name that is not a field,
    keeps ``dataclasses.replace`` (and its errors).
    """
    names = plain_slot_fields(cls)
    if names is None or not set(changed) <= set(names) or len(set(changed)) != len(changed):

        def generic(obj: Any, /, *values: Any) -> Any:
            return dataclasses.replace(obj, **dict(zip(changed, values, strict=True)))

        return generic
    params = {name: f"_v{i}" for i, name in enumerate(changed)}
    signature = f"o, /, {''.join(p + ', ' for p in params.values())}"
    return slot_builder(cls, signature, [params.get(name, "o." + name) for name in names], {})


def replace(obj: _T, /, **changes: Any) -> _T:
    """``dataclasses.replace(obj, **changes)``, faster for the state classes."""
    key = (obj.__class__, tuple(changes))
    replacer = _REPLACERS.get(key)
    if replacer is None:
        replacer = _REPLACERS[key] = _compile_replacer(*key)
    result: _T = replacer(obj, *changes.values())
    return result


def summary(tasks: dict[str, TaskState]) -> dict[str, Any]:
    """The seed's summary fields of the tasks, in one pass (a hot path)."""
    completed: list[str] = []
    pending: list[str] = []
    done = 0
    current: TaskState | None = None
    for task in tasks.values():
        status = task.status
        if status == "completed":
            completed.append(task.task_id)
            done += 1
        elif status == "skipped":
            done += 1
        elif status == "pending" or status == "scheduled":
            pending.append(task.task_id)
        elif status == "running" and (
            current is None
            or (
                task.started_at is not None
                and (current.started_at is None or task.started_at > current.started_at)
            )
        ):
            current = task
    return {
        "completed_tasks": tuple(completed),
        "pending_tasks": tuple(pending),
        "current_task": None if current is None else current.task_id,
        "progress": round(done / len(tasks), 4) if tasks else 0.0,
    }
