"""The seed's ``analyze_bottlenecks``: where the time and the retries went.

Pure over folded execution states, so the same analysis serves the CLI, the Python
API and tests. Consumer lag is measured by the caller and attached to the report.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from orchestrator.events import ExecutionState


@dataclass(frozen=True, slots=True)
class TaskTiming:
    """Durations of one task id across executions (seconds)."""

    task_id: str
    runs: int
    p50: float
    p95: float
    max: float


@dataclass(frozen=True, slots=True)
class RetriedTask:
    task_id: str
    retries: int
    executions: int


@dataclass(frozen=True, slots=True)
class Wait:
    """Time between a task being ready (its dependencies done) and starting."""

    execution_id: str
    task_id: str
    seconds: float


@dataclass(frozen=True, slots=True)
class BottleneckReport:
    slowest_tasks: list[TaskTiming]
    most_retried: list[RetriedTask]
    longest_waits: list[Wait]
    executions: int
    consumer_lag: dict[str, int] = field(default_factory=dict)


def _percentile(values: list[float], q: float) -> float:
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1]


def analyze(states: Iterable[ExecutionState], top: int = 10) -> BottleneckReport:
    """Slowest tasks by p50/p95, most retried tasks, longest waits between tasks."""
    durations: dict[str, list[float]] = defaultdict(list)
    retries: dict[str, list[int]] = defaultdict(list)
    waits: list[Wait] = []
    count = 0
    for state in states:
        count += 1
        for task in state.tasks.values():
            if task.started_at and task.completed_at and task.status == "completed":
                seconds = task.execution_details.get("duration")
                if seconds is None:
                    seconds = (task.completed_at - task.started_at).total_seconds()
                durations[task.task_id].append(float(seconds))
            if task.attempts > 1:
                retries[task.task_id].append(task.attempts - 1)
            deps = [state.tasks[d] for d in task.depends_on if d in state.tasks]
            ready = [d.completed_at for d in deps if d.completed_at is not None]
            if task.started_at and deps and len(ready) == len(deps):
                gap = (task.started_at - max(ready)).total_seconds()
                waits.append(Wait(state.execution_id, task.task_id, max(gap, 0.0)))
    timings = [
        TaskTiming(task_id, len(v), _percentile(sorted(v), 50), _percentile(sorted(v), 95), max(v))
        for task_id, v in durations.items()
    ]
    timings.sort(key=lambda t: (-t.p95, t.task_id))
    retried = [RetriedTask(t, sum(v), len(v)) for t, v in retries.items()]
    retried.sort(key=lambda r: (-r.retries, r.task_id))
    waits.sort(key=lambda w: -w.seconds)
    return BottleneckReport(timings[:top], retried[:top], waits[:top], count)
