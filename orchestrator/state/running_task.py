"""The task running in this context (set by the orchestrator around each task), and
``bound``: a context variable set for a block and reset after it.

``checkpoint.save``, ``StateManager`` and ``BatchStateManager`` find the running task
here; the process's runtime is in ``state.services``.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeVar

from orchestrator.commands import ExecutionWriter

_T = TypeVar("_T")


@contextlib.contextmanager
def bound(var: contextvars.ContextVar[_T], value: _T) -> Iterator[_T]:
    """Set ``var`` to ``value`` for the body (and the tasks it starts), then back."""
    token = var.set(value)
    try:
        yield value
    finally:
        var.reset(token)


@dataclass(frozen=True, slots=True)
class TaskContext:
    """The running task: the writer of its execution and the task's id."""

    writer: ExecutionWriter
    task_id: str

    @property
    def execution_id(self) -> str:
        return self.writer.execution_id


_task: contextvars.ContextVar[TaskContext | None] = contextvars.ContextVar(
    "orchestrator_state_task", default=None
)


@contextlib.contextmanager
def task_scope(writer: ExecutionWriter, task_id: str) -> Iterator[TaskContext]:
    """Run the body as task ``task_id`` of ``writer``'s execution (the orchestrator wraps
    each task's ``execute`` in this; tests may too)."""
    context = TaskContext(writer, task_id)
    with bound(_task, context):
        yield context


def current_task() -> TaskContext | None:
    """The task running in this context, if any."""
    return _task.get()
