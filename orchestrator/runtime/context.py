"""What a running task receives: its inputs, who and where it is, and its last checkpoint.

``context.last_checkpoint`` is the data of the newest checkpoint *this task* saved in
an earlier attempt (or the checkpoint handed to ``resume_pipeline(from_checkpoint=)``),
else ``None``; a task that checkpoints its parts uses it to skip the parts it already
did::

    async def execute(self, context):
        done = context.last_checkpoint or {}
        result_1 = done.get("result_1") or await self.process_part_1(context.data)
        await checkpoint.save(name="after_part_1", data={"result_1": result_1, "progress": 0.33})

``context.data`` is what a task works on: the output of its only dependency, the dict
of outputs when it has several (also ``context.inputs`` always), and the execution's
``input_data`` for a task without dependencies.

Code deeper down (a helper the task calls) finds the running task's context with
:func:`current_context`.

``context.state`` is a dict the task may update as it goes; with the ``periodic``
checkpoint strategy the runtime saves it (when changed) as a checkpoint of the task,
so it comes back as ``last_checkpoint`` after a crash. ``record_usage`` adds model
calls and tokens to the task's ``execution_details``.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.state import bound, checkpoint


@dataclass(eq=False, kw_only=True)
class TaskContext:
    """One attempt of one task (built by the runtime; read it, don't build it)."""

    execution_id: str
    pipeline_id: str
    task_id: str
    attempt: int
    node_id: str
    inputs: Mapping[str, Any]
    input_data: Any = None
    configuration: Any = None
    user_id: str | None = None
    last_checkpoint: Any = None
    last_checkpoint_id: str | None = None
    last_checkpoint_name: str | None = None
    resumed: bool = False
    state: dict[str, Any] = field(default_factory=dict)
    model_calls: int = 0
    tokens_used: int = 0
    memory_used: str | None = None

    @property
    def data(self) -> Any:
        """The only upstream output, the dict of them, or the execution's input data."""
        if not self.inputs:
            return self.input_data
        if len(self.inputs) == 1:
            return next(iter(self.inputs.values()))
        return dict(self.inputs)

    @property
    def context(self) -> dict[str, Any]:
        """The execution's context as the seed's pipeline state shows it."""
        return {
            "user_id": self.user_id,
            "input_data": self.input_data,
            "configuration": self.configuration,
        }

    def record_usage(
        self, *, model_calls: int = 0, tokens: int = 0, memory_used: str | None = None
    ) -> None:
        """Count model calls and tokens into this task's ``execution_details``."""
        self.model_calls += model_calls
        self.tokens_used += tokens
        if memory_used is not None:
            self.memory_used = memory_used

    async def checkpoint(
        self, name: str, data: Any = None, metadata: Any = None
    ) -> checkpoint.SavedCheckpoint:
        """``checkpoint.save`` for this task (the same call, for those who prefer it here)."""
        return await checkpoint.save(name=name, data=data, metadata=metadata)


_current: contextvars.ContextVar[TaskContext | None] = contextvars.ContextVar(
    "orchestrator_task_context", default=None
)


def current_context() -> TaskContext | None:
    """The context of the task running in this asyncio task, if any."""
    return _current.get()


@contextlib.contextmanager
def running(context: TaskContext) -> Iterator[TaskContext]:
    """Make ``context`` the current one for the body (the executor wraps each attempt)."""
    with bound(_current, context):
        yield context


_CONTEXT_KEYS = frozenset({"user_id", "input_data", "configuration"})


def split_context(context: Mapping[str, Any] | None) -> dict[str, Any]:
    """The seed's ``context`` (``user_id``, ``input_data``, ``configuration``); any other
    mapping is taken as the input data itself."""
    if context is None:
        return {}
    if set(context) <= _CONTEXT_KEYS:
        return dict(context)
    return {"input_data": dict(context)}
