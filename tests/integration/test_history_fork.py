"""Fork: a new execution from another one's state, run to completion by the runtime.

A pipeline ``fetch → double → report`` runs to completion with the real runtime;
forks of it at a sequence and at a checkpoint are then resumed with
``Orchestrator.resume_pipeline(execution_id=fork)``: the tasks completed before the
fork point must not run again, the others must, and the lineage must show in the
read model and the query API.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import pytest
from _api_support import running
from _history_support import cli
from _state_stack import Stack, state_stack

from orchestrator.debug import fork_execution
from orchestrator.events.envelope import Position
from orchestrator.projections.api import ApiSettings, create_app
from orchestrator.runtime import (
    CheckpointPolicy,
    Orchestrator,
    Pipeline,
    Policies,
    RetryPolicy,
    TaskContext,
)
from orchestrator.state import checkpoint, use_runtime


@pytest.fixture(scope="module")
async def stack(kafka: Any, postgres: str) -> AsyncIterator[Stack]:
    async with state_stack(kafka, postgres, lease_ttl=3.0) as s:
        with use_runtime(s.runtime):
            yield s


def _pipeline(calls: Counter[str], seen: list[Any]) -> Pipeline:
    pipeline = Pipeline(f"fork_{uuid.uuid4().hex[:6]}")

    @pipeline.task()
    async def fetch(context: TaskContext) -> dict[str, int]:
        calls["fetch"] += 1
        return {"n": context.data["n"]}

    @pipeline.task(depends_on=["fetch"])
    async def double(fetch: dict[str, int], context: TaskContext) -> int:
        calls["double"] += 1
        seen.append(context.last_checkpoint)
        await checkpoint.save(name="halfway", data={"partial": fetch["n"]})
        return fetch["n"] * 2

    @pipeline.task(depends_on=["double"])
    async def report(double: int) -> dict[str, int]:
        calls["report"] += 1
        return {"result": double + 1}

    return pipeline


async def _applied(stack: Stack, execution_id: str) -> list[tuple[int, str, dict[str, Any]]]:
    rows = await stack.pool.fetch(
        "SELECT sequence, event_type, payload FROM execution_events WHERE execution_id = $1"
        " AND outcome = 'applied' AND sequence IS NOT NULL ORDER BY partition, \"offset\"",
        execution_id,
    )
    return [(r["sequence"], r["event_type"], json.loads(r["payload"])) for r in rows]


async def test_a_fork_runs_to_completion_without_rerunning_tasks_done_before_it(
    stack: Stack,
) -> None:
    calls: Counter[str] = Counter()
    seen: list[Any] = []
    pipeline = _pipeline(calls, seen)
    orchestrator = Orchestrator(
        stack.runtime,
        policies=Policies(
            retry=RetryPolicy(max_attempts=2, base_delay=0.05, max_delay=0.1),
            checkpoints=CheckpointPolicy.of(enabled=False),
        ),
    )
    original = await orchestrator.run_pipeline(pipeline, context={"input_data": {"n": 21}})
    assert original.result == {"result": 43} and calls == Counter(fetch=1, double=1, report=1)
    await stack.runtime.wait_for(stack.runtime.written())
    events = await _applied(stack, original.execution_id)
    after_double = next(
        s for s, t, p in events if t == "TaskCompleted" and p["task_id"] == "double"
    )

    # Fork after `double` completed: only `report` runs again.
    fork = await fork_execution(original.execution_id, at_sequence=after_double)
    assert (fork.forked_from, fork.fork_sequence) == (original.execution_id, after_double)
    assert fork.root_execution_id == original.execution_id
    assert fork.carried_tasks == ("fetch", "double") and fork.pending_tasks == ("report",)
    assert len(fork.copied_checkpoints) == 1
    await stack.runtime.wait_for([fork.position])
    result = await orchestrator.resume_pipeline(execution_id=fork.execution_id)
    assert result.status == "completed" and result.result == {"result": 43}
    assert set(result.reused_tasks) == {"fetch", "double"}
    assert calls == Counter(fetch=1, double=1, report=2)
    assert result.outputs["double"] == original.outputs["double"]

    # Fork at the checkpoint `double` saved mid-way: `double` resumes from it.
    [halfway] = [p["checkpoint_id"] for _, t, p in events if t == "CheckpointSaved"]
    second = await fork_execution(fork.execution_id, checkpoint_id=fork.copied_checkpoints[0])
    assert second.root_execution_id == original.execution_id
    assert second.forked_from == fork.execution_id
    assert second.carried_tasks == ("fetch",)
    assert second.pending_tasks == ("double", "report")
    await stack.runtime.wait_for([second.position])
    again = await orchestrator.resume_pipeline(execution_id=second.execution_id)
    assert again.result == {"result": 43}
    assert calls == Counter(fetch=1, double=2, report=3)
    assert seen == [None, {"partial": 21}]
    assert halfway in fork.copied_checkpoints[0]

    # The carried completion says where it came from; the API shows the lineage.
    carried = await _applied(stack, fork.execution_id)
    completed = [p for _, t, p in carried if t == "TaskCompleted" and p["task_id"] == "fetch"]
    assert completed[0]["metadata"]["fork"]["forked_from"] == original.execution_id
    settings = ApiSettings(
        database_url=stack.dsn, tables=stack.projection.tables, projection=stack.projection.name
    )
    await stack.runtime.wait_for(stack.runtime.written())  # the forks' last writes applied
    async with running(create_app(settings)) as client:
        body = (await client.get(f"/executions/{second.execution_id}")).json()
    assert body["forked_from"] == fork.execution_id
    assert body["root_execution_id"] == original.execution_id
    assert body["fork_sequence"] == second.fork_sequence
    assert body["status"] == "completed"


async def test_fork_from_the_command_line(stack: Stack) -> None:
    calls: Counter[str] = Counter()
    pipeline = _pipeline(calls, [])
    orchestrator = Orchestrator(stack.runtime)
    original = await orchestrator.run_pipeline(pipeline, context={"input_data": {"n": 1}})
    await stack.runtime.wait_for(stack.runtime.written())
    [halfway] = [
        p["checkpoint_id"]
        for _, t, p in await _applied(stack, original.execution_id)
        if t == "CheckpointSaved" and p["name"] == "halfway"
    ]
    new_id = f"{original.execution_id}-cli-fork"
    result = await cli(
        "fork", original.execution_id, "--checkpoint", halfway, "--id", new_id, "--json",
        "--database-url", stack.dsn, "--projection", stack.projection.name,
        "--pipeline-topic", stack.topics.pipeline.name,
        "--bootstrap-servers", stack.kafka.bootstrap_servers,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    body = json.loads(result.stdout)
    assert body["execution_id"] == new_id and body["carried_tasks"] == ["fetch"]
    await stack.runtime.wait_for([Position.parse(body["position"])])
    done = await orchestrator.resume_pipeline(execution_id=new_id)
    assert done.result == {"result": 3} and calls == Counter(fetch=1, double=2, report=2)
