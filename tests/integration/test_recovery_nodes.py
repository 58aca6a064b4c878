"""Node failure: two worker nodes run executions; one is SIGKILLed; the other finishes its
executions (``node_failure: redistribute_tasks``).

The test process runs the projection processor and the recovery supervisor's leader
*without* the pipeline's code, so it cannot resume anything itself: it must assign the
dead node's executions to the live node that has the code, which claims them through
their leases.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from _worker import StartApp, WorkerProcess, marks_of, resumed_marks

from orchestrator.app import App
from orchestrator.devstack import ServiceEndpoints

FAILOVER = 1.0


@pytest.fixture
async def app(start_app: StartApp, coordination: str) -> App:
    """The leader's app, with leases on PostgreSQL or (the workers too) on etcd."""
    return await start_app(
        name="nodes",
        node_id="leader-node",
        crash_timeout=120,
        failover_timeout=FAILOVER,
        extra_yaml=coordination,
    )


async def test_executions_of_a_killed_node_finish_on_the_other_node(
    app: App, services: ServiceEndpoints, tmp_path: Path
) -> None:
    assert app.runtime is not None and app.orchestrator is not None
    leader = app.orchestrator.supervisor
    assert leader is not None
    deadline = time.monotonic() + 15
    while not leader.leading:  # the test process leads before any worker campaigns
        assert time.monotonic() < deadline
        await asyncio.sleep(0.05)

    def spec(node: str, holds: list[float]) -> dict[str, object]:
        return {
            "config": app.config_text,  # type: ignore[attr-defined]
            "env": {**services.as_env(), "DATABASE_URL": app.plan.dsn},
            "node_id": node,
            "projection": app.plan.projection.name,
            "marks": str(tmp_path),
            "supervise": True,
            "submit": [{"hold": h} for h in holds],
        }

    doomed = WorkerProcess(spec("node-a", [120, 120]), tmp_path)
    survivor = WorkerProcess(spec("node-b", [0.2]), tmp_path)
    try:
        await asyncio.gather(doomed.start(), survivor.start())
        deadline = time.monotonic() + 30
        for eid in doomed.submitted:
            while ("fetch:checkpointed", 1, "node-a") not in marks_of(tmp_path, eid):
                assert time.monotonic() < deadline, marks_of(tmp_path, eid)
                await asyncio.sleep(0.05)
        doomed.kill()

        finished = {}
        deadline = time.monotonic() + 30
        for eid in [*doomed.submitted, *survivor.submitted]:
            while True:
                state = await app.runtime.read_model.load_execution(eid)
                if state is not None and state.status == "completed":
                    finished[eid] = state
                    break
                assert time.monotonic() < deadline, f"{eid}: {state and state.status}"
                await asyncio.sleep(0.1)
    finally:
        doomed.kill()
        await asyncio.gather(doomed.close(), survivor.close())

    for eid in doomed.submitted:
        state = finished[eid]
        assert state.owner == "node-b", eid
        assert marks_of(tmp_path, eid) == resumed_marks("node-a", "node-b")
    assert {d.execution_id: d.reason for d in leader.decisions} == dict.fromkeys(
        doomed.submitted, "node_failure"
    )
    assert finished[survivor.submitted[0]].outputs == "3 pages"
