"""Pipelines defined in Python: async tasks with dependencies.

Two ways to declare a task, mixed freely::

    pipeline = Pipeline("research_assistant")

    @pipeline.task()
    async def init(context): ...

    @pipeline.task(depends_on=["init"])
    async def validate_input(init, context): ...      # ``init``'s output, then the context

    pipeline.add(CustomTask(), task_id="custom", depends_on=["validate_input"])
    # any object with ``async def execute(self, context)`` (the seed's CustomTask)

A function's parameters are bound by name when it is declared, so a typo fails at
definition, not mid-run: a dependency's id receives that task's output, ``context`` (or
``ctx``) the :class:`~orchestrator.runtime.context.TaskContext`, ``inputs`` the dict of
all upstream outputs, ``data`` ``context.data``. Parameters with defaults may be left
unbound.

Every ``Pipeline`` is also entered in a process-wide registry by id (latest definition
wins, weakly held), so ``Orchestrator().resume_pipeline(pipeline_id=...)`` finds the
code of a pipeline this process defined without being handed the object.
"""

from __future__ import annotations

import inspect
import re
import weakref
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, overload

from orchestrator.events import TaskSpec
from orchestrator.runtime.errors import PipelineDefinitionError

if TYPE_CHECKING:
    from orchestrator.runtime.context import TaskContext

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])
Runner = Callable[["TaskContext"], Awaitable[Any]]
Validator = Callable[[Mapping[str, Any]], Any]

_TASK_ID = re.compile(r"^[A-Za-z0-9_.:\-]+$")
_CONTEXT_NAMES = ("context", "ctx")

_registry: weakref.WeakValueDictionary[str, Pipeline] = weakref.WeakValueDictionary()


def registered_pipeline(pipeline_id: str) -> Pipeline | None:
    """The latest live ``Pipeline`` defined in this process under ``pipeline_id``."""
    return _registry.get(pipeline_id)


def registered_pipelines() -> list[Pipeline]:
    """Every live ``Pipeline`` defined in this process."""
    return list(_registry.values())


@dataclass(frozen=True, slots=True)
class TaskDefinition:
    """One task: its id, the tasks it waits for, and how to call it with a context."""

    task_id: str
    depends_on: tuple[str, ...]
    run: Runner
    target: object

    def spec(self) -> TaskSpec:
        return TaskSpec(task_id=self.task_id, depends_on=self.depends_on)


def _bind_function(
    pipeline_id: str, task_id: str, fn: Callable[..., Any], deps: Sequence[str]
) -> Runner:
    if not inspect.iscoroutinefunction(fn):
        raise PipelineDefinitionError(pipeline_id, f"task {task_id!r}: {fn!r} is not `async def`")
    params = inspect.signature(fn).parameters.values()
    binders: list[tuple[str, Callable[[TaskContext], Any]]] = []
    for p in params:
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        name = p.name
        getter: Callable[[TaskContext], Any] | None
        if name in _CONTEXT_NAMES:
            getter = _identity
        elif name in deps:
            getter = _upstream(name)
        elif name == "inputs":
            getter = _inputs
        elif name == "data":
            getter = _data
        else:
            getter = None
        if getter is None:
            if p.default is p.empty:
                raise PipelineDefinitionError(
                    pipeline_id,
                    f"task {task_id!r}: parameter {name!r} is neither a dependency "
                    f"({', '.join(deps) or 'none declared'}) nor context/ctx/inputs/data",
                )
            continue
        if p.kind is p.POSITIONAL_ONLY:
            raise PipelineDefinitionError(
                pipeline_id, f"task {task_id!r}: positional-only parameter {name!r}"
            )
        binders.append((name, getter))

    async def run(context: TaskContext) -> Any:
        return await fn(**{name: get(context) for name, get in binders})

    return run


def _identity(context: TaskContext) -> TaskContext:
    return context


def _upstream(name: str) -> Callable[[TaskContext], Any]:
    return lambda context: context.inputs[name]


def _inputs(context: TaskContext) -> Any:
    return context.inputs


def _data(context: TaskContext) -> Any:
    return context.data


def _bind_object(pipeline_id: str, task_id: str, obj: object) -> Runner:
    execute = getattr(obj, "execute", None)
    if execute is None or not inspect.iscoroutinefunction(execute):
        raise PipelineDefinitionError(
            pipeline_id, f"task {task_id!r}: {obj!r} has no `async def execute(self, context)`"
        )

    async def run(context: TaskContext) -> Any:
        return await execute(context)

    return run


def _default_id(target: object) -> str:
    name = getattr(target, "task_id", None) or getattr(target, "__name__", None)
    if isinstance(name, str):
        return name
    snake = re.sub(r"(?<!^)(?=[A-Z])", "_", type(target).__name__).lower()
    return snake


class Pipeline:
    """A named set of tasks with dependencies (a DAG), checked as it is built."""

    def __init__(self, pipeline_id: str, *, validate: Validator | None = None) -> None:
        if not pipeline_id or not _TASK_ID.match(pipeline_id):
            raise PipelineDefinitionError(pipeline_id, "use letters, digits and _ . : -")
        self.pipeline_id = pipeline_id
        self._tasks: dict[str, TaskDefinition] = {}
        self._validate = validate
        _registry[pipeline_id] = self

    @property
    def name(self) -> str:
        return self.pipeline_id

    @overload
    def task(self, fn: F, /) -> F: ...

    @overload
    def task(
        self,
        fn: None = None,
        /,
        *,
        task_id: str | None = None,
        depends_on: Iterable[str] = (),
    ) -> Callable[[F], F]: ...

    def task(
        self,
        fn: F | None = None,
        /,
        *,
        task_id: str | None = None,
        depends_on: Iterable[str] = (),
    ) -> F | Callable[[F], F]:
        """Decorator declaring an ``async def`` task (``@pipeline.task`` or with arguments)."""

        def declare(target: F) -> F:
            self.add(target, task_id=task_id, depends_on=depends_on)
            return target

        return declare if fn is None else declare(fn)

    def add(
        self, target: object, *, task_id: str | None = None, depends_on: Iterable[str] = ()
    ) -> TaskDefinition:
        """Declare a task: an ``async def`` or an object with ``async execute(context)``.

        Dependencies must be declared first, which also rules out cycles.
        """
        tid = task_id or _default_id(target)
        deps = tuple(dict.fromkeys(depends_on))
        if not _TASK_ID.match(tid):
            raise PipelineDefinitionError(
                self.pipeline_id, f"task id {tid!r}: use letters, digits and _ . : -"
            )
        if tid in self._tasks:
            raise PipelineDefinitionError(self.pipeline_id, f"task {tid!r} is declared twice")
        unknown = [d for d in deps if d not in self._tasks]
        if unknown:
            raise PipelineDefinitionError(
                self.pipeline_id,
                f"task {tid!r} depends on {unknown}, not declared before it "
                f"(declared: {list(self._tasks) or 'none'})",
            )
        if inspect.isfunction(target) or inspect.ismethod(target):
            run = _bind_function(self.pipeline_id, tid, target, deps)
        else:
            run = _bind_object(self.pipeline_id, tid, target)
        definition = TaskDefinition(tid, deps, run, target)
        self._tasks[tid] = definition
        return definition

    def validator(self, fn: Validator) -> Validator:
        """Decorator: ``fn(context)`` checks the execution's context before any task runs;
        raising fails the execution in ``validating`` (no retry)."""
        self._validate = fn
        return fn

    async def validate(self, context: Mapping[str, Any]) -> None:
        if not self._tasks:
            raise PipelineDefinitionError(self.pipeline_id, "has no tasks")
        if self._validate is not None:
            result = self._validate(context)
            if inspect.isawaitable(result):
                await result

    @property
    def tasks(self) -> list[TaskDefinition]:
        """The tasks in declaration order (a topological order)."""
        return list(self._tasks.values())

    def __getitem__(self, task_id: str) -> TaskDefinition:
        return self._tasks[task_id]

    def __contains__(self, task_id: object) -> bool:
        return task_id in self._tasks

    def specs(self) -> list[TaskSpec]:
        return [t.spec() for t in self._tasks.values()]

    def sinks(self) -> list[str]:
        """Tasks no other task depends on: their outputs are the execution's result."""
        needed = {d for t in self._tasks.values() for d in t.depends_on}
        return [tid for tid in self._tasks if tid not in needed]

    def matches(self, task_ids: Iterable[str]) -> bool:
        """Whether an execution's recorded task list is this pipeline's."""
        return set(task_ids) == set(self._tasks)

    def __repr__(self) -> str:
        return f"Pipeline({self.pipeline_id!r}, tasks={list(self._tasks)})"
