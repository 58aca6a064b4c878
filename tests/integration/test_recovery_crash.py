"""A worker SIGKILLed inside a task: the supervisor resumes the execution by itself.

The worker (``_worker.py``, its own process) runs ``crash_pipeline``; the test process
runs the projection processor and the recovery supervisor (the leader), with the
pipeline's code. The worker is killed right after ``fetch`` saved its checkpoint; after
``pipeline_crash.timeout`` without progress and with the execution's lease expired, the
supervisor takes the execution over and finishes it. Side effects are counted from the
lines the tasks append to a file.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import pytest
from _worker import StartApp, WorkerProcess, make_pipeline, marks_of, resumed_marks

from orchestrator.app import App
from orchestrator.devstack import ServiceEndpoints
from orchestrator.events.fold import fold
from orchestrator.events.state import ExecutionState

CRASH_TIMEOUT = 3.0


@pytest.fixture
async def app(start_app: StartApp, coordination: str, tmp_path: Path) -> App:
    """The supervisor's app, with leases on PostgreSQL or (the worker too) on etcd."""
    return await start_app(
        name="crash",
        node_id="supervisor-node",
        crash_timeout=CRASH_TIMEOUT,
        failover_timeout=60,
        pipelines=[make_pipeline(tmp_path)],
        extra_yaml=coordination,
    )


async def wait_status(app: App, execution_id: str, status: str, patience: float) -> ExecutionState:
    assert app.runtime is not None
    deadline = time.monotonic() + patience
    while True:
        state = await app.runtime.read_model.load_execution(execution_id)
        if state is not None and state.status == status:
            return state
        if time.monotonic() > deadline:
            raise AssertionError(f"{execution_id} is {state and state.status}, not {status}")
        await asyncio.sleep(0.1)


async def full_fold(app: App, execution_id: str, partition_of: Any) -> ExecutionState | None:
    """The execution folded from the first event of its partition in Kafka."""
    assert app.log is not None
    topic, partition = partition_of
    events = [
        e async for _, e in app.log.read_range(topic, partition) if e.execution_id == execution_id
    ]
    return fold(events)


async def test_killed_worker_is_resumed_from_its_checkpoint_by_the_supervisor(
    app: App, services: ServiceEndpoints, tmp_path: Path
) -> None:
    assert app.runtime is not None and app.orchestrator is not None
    worker = WorkerProcess(
        {
            "config": app.config_text,  # type: ignore[attr-defined]
            "env": {**services.as_env(), "DATABASE_URL": app.plan.dsn},
            "node_id": "worker-node",
            "projection": app.plan.projection.name,
            "marks": str(tmp_path),
            "supervise": False,
            "submit": [{"hold": 120}],
        },
        tmp_path,
    )
    try:
        await worker.start()
        [eid] = worker.submitted
        deadline = time.monotonic() + 30
        while ("fetch:checkpointed", 1, "worker-node") not in marks_of(tmp_path, eid):
            assert time.monotonic() < deadline, marks_of(tmp_path, eid)
            await asyncio.sleep(0.05)
        worker.kill()
        killed_at = time.monotonic()

        lease_ttl = app.plan.state.writer.lease_ttl
        state = await wait_status(app, eid, "completed", CRASH_TIMEOUT + lease_ttl + 15)
        took = time.monotonic() - killed_at
    finally:
        worker.kill()
        await worker.close()

    assert took < CRASH_TIMEOUT + lease_ttl + 5, f"resumed after {took:.1f}s"
    assert (eid, "pipeline_crash", "completed") in app.orchestrator.recoveries
    # What ran where: init once (worker), fetch's part 1 once (worker), the rest once
    # on the supervisor's node, fetch as attempt 2 from its checkpoint.
    assert marks_of(tmp_path, eid) == resumed_marks("worker-node", "supervisor-node")
    assert state.owner == "supervisor-node" and state.epoch >= 2
    assert {t: s.attempts for t, s in state.tasks.items()} == {"init": 1, "fetch": 2, "report": 1}
    assert state.outputs == "3 pages"
    # The read model equals the full fold of the log.
    row = await app.runtime.pool.fetchrow(
        f"SELECT last_topic, last_partition FROM {app.plan.projection.tables.pipeline_states}"
        " WHERE execution_id = $1",
        eid,
    )
    folded = await full_fold(app, eid, (row["last_topic"], row["last_partition"]))
    assert folded == state
