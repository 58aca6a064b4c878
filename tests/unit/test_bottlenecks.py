"""analyze_bottlenecks ranks tasks by duration, retries and waits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from orchestrator.debug.bottlenecks import analyze
from orchestrator.events.state import ExecutionState, TaskState

T0 = datetime(2024, 1, 15, 10, 0, tzinfo=UTC)


def _execution(n: int, search_seconds: float, attempts: int) -> ExecutionState:
    init_done = T0 + timedelta(seconds=1)
    search_start = init_done + timedelta(seconds=30)
    tasks = {
        "init": TaskState(
            task_id="init",
            status="completed",
            attempts=1,
            started_at=T0,
            completed_at=init_done,
            execution_details={"duration": 1.0},
        ),
        "web_search": TaskState(
            task_id="web_search",
            status="completed",
            attempts=attempts,
            depends_on=("init",),
            started_at=search_start,
            completed_at=search_start + timedelta(seconds=search_seconds),
            execution_details={"duration": search_seconds},
        ),
    }
    return ExecutionState(execution_id=f"e{n}", pipeline_id="p", status="completed", tasks=tasks)


def test_slowest_retried_and_waiting_tasks_are_ranked() -> None:
    report = analyze(_execution(n, 100.0 + n, attempts=1 + n % 3) for n in range(10))
    assert report.executions == 10
    assert [t.task_id for t in report.slowest_tasks] == ["web_search", "init"]
    assert report.slowest_tasks[0].p50 == 104.5
    assert report.slowest_tasks[0].max == 109.0
    [retried] = report.most_retried
    assert retried.task_id == "web_search" and retried.retries == sum(n % 3 for n in range(10))
    assert report.longest_waits[0].task_id == "web_search"
    assert report.longest_waits[0].seconds == 30.0
