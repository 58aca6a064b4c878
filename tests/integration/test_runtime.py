"""The pipeline runtime against the real stack: tasks, dependencies, retries, checkpoints.

Each test runs its pipelines through ``Orchestrator`` on a fresh database and topics
with the projection processor running in-process (``_state_stack``); what it asserts
is read back from the read model and the log, not from the runtime's memory.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from _state_stack import Stack, state_stack

from orchestrator.commands.decide import CreateExecution
from orchestrator.runtime import (
    CheckpointPolicy,
    Orchestrator,
    Pipeline,
    PipelineFailed,
    Policies,
    RecoveryError,
    RetryPolicy,
    TaskContext,
    TaskError,
)
from orchestrator.state import StateManager, checkpoint, use_runtime

FAST_RETRY = RetryPolicy(max_attempts=3, base_delay=0.05, max_delay=0.2)


@pytest.fixture(scope="module")
async def stack(kafka: Any, postgres: str) -> AsyncIterator[Stack]:
    async with state_stack(kafka, postgres, lease_ttl=3.0) as s:
        with use_runtime(s.runtime):
            yield s


def orchestrator_for(stack: Stack, **policies: Any) -> Orchestrator:
    policies.setdefault("retry", FAST_RETRY)
    policies.setdefault("checkpoints", CheckpointPolicy.of(enabled=False))
    return Orchestrator(stack.runtime, policies=Policies(**policies))


async def event_types(stack: Stack, execution_id: str) -> list[tuple[str, dict[str, Any]]]:
    """The execution's applied events, in log order, as (type, payload)."""
    rows = await stack.pool.fetch(
        "SELECT event_type, payload FROM execution_events WHERE execution_id = $1"
        " AND outcome = 'applied' ORDER BY partition, \"offset\"",
        execution_id,
    )
    import json

    return [(r["event_type"], json.loads(r["payload"])) for r in rows]


async def test_tasks_run_in_dependency_order_and_receive_upstream_outputs(stack: Stack) -> None:
    pipeline = Pipeline("rt_diamond")
    order: list[str] = []

    @pipeline.task()
    async def fetch(context: TaskContext) -> dict[str, Any]:
        order.append("fetch")
        return {"n": context.data["n"]}

    @pipeline.task(depends_on=["fetch"])
    async def double(fetch: dict[str, Any], context: TaskContext) -> int:
        order.append("double")
        context.record_usage(model_calls=2, tokens=150)
        return int(fetch["n"]) * 2

    @pipeline.task(depends_on=["fetch"])
    async def square(fetch: dict[str, Any]) -> int:
        order.append("square")
        return int(fetch["n"]) ** 2

    @pipeline.task(depends_on=["double", "square"])
    async def report(inputs: dict[str, Any], context: TaskContext) -> dict[str, Any]:
        order.append("report")
        assert context.data == inputs
        return {"sum": inputs["double"] + inputs["square"], "user": context.user_id}

    orchestrator = orchestrator_for(
        stack,
        checkpoints=CheckpointPolicy.of("progressive", after_tasks=["square"], min_interval=0),
    )
    result = await orchestrator.run_pipeline(
        pipeline, context={"user_id": "u1", "input_data": {"n": 4}}
    )

    assert result.status == "completed"
    assert result.result == {"sum": 8 + 16, "user": "u1"}
    assert order[0] == "fetch" and order[-1] == "report"
    state = await StateManager(stack.runtime).get_pipeline_state(
        result.execution_id, position=stack.runtime.written()[-1]
    )
    assert state.status == "completed"
    assert state.outputs == {"sum": 24, "user": "u1"}
    assert {t: s.attempts for t, s in state.tasks.items()} == dict.fromkeys(order, 1)
    assert state.tasks["double"].execution_details["tokens_used"] == 150
    assert state.tasks["double"].execution_details["model_calls"] == 2
    assert state.tasks["report"].inputs == {"double": 8, "square": 16}
    assert [(c.name, c.task_id) for c in state.checkpoints] == [
        ("auto/progressive/square", "square")
    ]


async def test_a_task_failing_twice_is_retried_with_backoff_from_its_checkpoint(
    stack: Stack,
) -> None:
    pipeline = Pipeline("rt_retry")
    seen: list[tuple[int, Any]] = []

    @pipeline.task()
    async def flaky(context: TaskContext) -> str:
        seen.append((context.attempt, context.last_checkpoint))
        done = (context.last_checkpoint or {}).get("parts", 0)
        await checkpoint.save(name=f"part_{done + 1}", data={"parts": done + 1})
        if context.attempt < 3:
            raise ConnectionError(f"model endpoint down (attempt {context.attempt})")
        return f"done after {done + 1} parts"

    result = await orchestrator_for(stack).run_pipeline(pipeline)

    assert result.result == "done after 3 parts"
    assert seen == [(1, None), (2, {"parts": 1}), (3, {"parts": 2})]
    state = await StateManager(stack.runtime).get_pipeline_state(
        result.execution_id, consistency="strong", position=stack.runtime.written()[-1]
    )
    assert state.tasks["flaky"].attempts == 3
    assert state.tasks["flaky"].status == "completed"
    history = [
        (t, p.get("attempt"), p.get("delay_seconds"))
        for t, p in await event_types(stack, result.execution_id)
        if t.startswith("Task")
    ]
    kinds = [(t, a) for t, a, _ in history]
    assert kinds == [
        ("TaskScheduled", None),
        ("TaskStarted", 1),
        ("TaskFailed", 1),
        ("TaskRetryScheduled", 2),
        ("TaskStarted", 2),
        ("TaskFailed", 2),
        ("TaskRetryScheduled", 3),
        ("TaskStarted", 3),
        ("TaskCompleted", None),
    ]
    delays = [d for t, _, d in history if t == "TaskRetryScheduled"]
    # exponential with jitter in [d/2, d]: 0.05 then 0.1
    assert 0.025 <= delays[0] <= 0.05 and 0.05 <= delays[1] <= 0.1


async def test_a_non_retryable_failure_fails_the_execution_for_good(stack: Stack) -> None:
    pipeline = Pipeline("rt_fatal")
    calls = 0

    @pipeline.task()
    async def first() -> int:
        return 1

    @pipeline.task(depends_on=["first"])
    async def bad(first: int) -> int:
        nonlocal calls
        calls += 1
        raise TaskError("input is malformed", retryable=False)

    orchestrator = orchestrator_for(stack)
    with pytest.raises(PipelineFailed) as failed:
        await orchestrator.run_pipeline(pipeline)
    assert calls == 1
    assert failed.value.task_id == "bad" and failed.value.retryable is False
    with pytest.raises(RecoveryError, match="non-retryable"):
        await orchestrator.resume_pipeline(execution_id=failed.value.execution_id)


async def test_a_failed_execution_resumes_without_rerunning_completed_tasks(
    stack: Stack,
) -> None:
    pipeline = Pipeline("rt_manual_resume")
    runs = {"prepare": 0, "call_api": 0}
    api_up = False

    @pipeline.task()
    async def prepare() -> str:
        runs["prepare"] += 1
        return "query"

    @pipeline.task(depends_on=["prepare"])
    async def call_api(prepare: str) -> str:
        runs["call_api"] += 1
        if not api_up:
            raise ConnectionError("503")
        return prepare.upper()

    orchestrator = orchestrator_for(stack)
    with pytest.raises(PipelineFailed) as failed:
        await orchestrator.run_pipeline(pipeline)
    assert failed.value.retryable and runs == {"prepare": 1, "call_api": 3}

    api_up = True
    result = await orchestrator.resume_pipeline(execution_id=failed.value.execution_id)

    assert result.result == "QUERY" and result.resumed
    assert runs == {"prepare": 1, "call_api": 4}
    assert result.reused_tasks == ("prepare",)
    assert result.attempts == {"prepare": 1, "call_api": 4}
    with pytest.raises(RecoveryError, match="completed already"):
        await orchestrator.resume_pipeline(execution_id=result.execution_id)


async def test_resume_refuses_unknown_executions_and_pipelines_it_has_no_code_for(
    stack: Stack,
) -> None:
    orchestrator = orchestrator_for(stack)
    with pytest.raises(RecoveryError, match="no such execution"):
        await orchestrator.resume_pipeline(execution_id="exec_does_not_exist")
    writer = await stack.runtime.create_execution(
        CreateExecution(
            execution_id="exec_foreign", pipeline_id="rt_defined_elsewhere", tasks=["a"]
        )
    )
    await stack.runtime.release_execution(writer.execution_id)
    with pytest.raises(RecoveryError, match="not registered on node") as refused:
        await orchestrator.resume_pipeline(execution_id="exec_foreign", wait=0)
    assert refused.value.execution_id == "exec_foreign"


async def test_periodic_checkpoints_save_a_running_tasks_state(stack: Stack) -> None:
    pipeline = Pipeline("rt_periodic")

    @pipeline.task()
    async def crawl(context: TaskContext) -> int:
        for page in range(1, 5):
            context.state["pages"] = page
            await asyncio.sleep(0.15)
        return 4

    orchestrator = orchestrator_for(
        stack, checkpoints=CheckpointPolicy.of("periodic", interval=0.2)
    )
    result = await orchestrator.run_pipeline(pipeline)

    saved = await checkpoint.list(execution_id=result.execution_id, runtime=stack.runtime)
    assert saved, "the periodic timer saved nothing"
    assert all(c.name == "auto/periodic" and c.task_id == "crawl" for c in saved)
    restored = await checkpoint.restore(checkpoint_id=saved[-1].id, runtime=stack.runtime)
    assert 1 <= restored.data["pages"] <= 4


async def test_on_success_checkpoints_follow_the_listed_tasks(stack: Stack) -> None:
    pipeline = Pipeline("rt_on_success")
    for name, deps in (("a", []), ("critical", ["a"]), ("b", ["critical"])):

        async def run() -> str:
            return "ok"

        pipeline.add(run, task_id=name, depends_on=deps)

    orchestrator = orchestrator_for(
        stack, checkpoints=CheckpointPolicy.of("on_success", on_success_tasks=["critical"])
    )
    result = await orchestrator.run_pipeline(pipeline)
    saved = await checkpoint.list(execution_id=result.execution_id, runtime=stack.runtime)
    assert [(c.name, c.task_id) for c in saved] == [("auto/on_success/critical", "critical")]
    assert saved[0].metadata == {"automatic": True, "strategy": "on_success"}
