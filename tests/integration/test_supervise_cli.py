"""``orchestrator-state supervise`` alone recovers a dead node's execution on a live node.

The supervisor runs as the CLI process a deployment runs (compose's ``supervisor``
service), with no pipeline code of its own; the test process runs only the projection
processor; two worker nodes run the pipeline. node-a is SIGKILLed mid-task: the CLI
supervisor, leading, assigns its execution to node-b, which resumes it from the
checkpoint and finishes it. SIGTERM then stops the supervisor with exit 0.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from _databases import MakeDatabase
from _projector_support import CLI, fetchval
from _worker import WorkerProcess, config_yaml, marks_of, plan_on

from orchestrator.app import App, AppOptions
from orchestrator.config import load_config
from orchestrator.devstack import ServiceEndpoints

pytestmark = pytest.mark.slow


@pytest.fixture
async def projector(
    services: ServiceEndpoints, make_database: MakeDatabase, tmp_path: Path
) -> AsyncIterator[App]:
    """The test process: the projection processor only (no heartbeat, no campaign)."""
    text = config_yaml(
        f"test-supervise-{uuid.uuid4().hex[:8]}", crash_timeout=120, failover_timeout=1.0
    )
    settings = load_config(text).settings
    dsn = await make_database(migrated=False)
    plan = plan_on(services, settings, dsn=dsn, node_id="projector", data_dir=tmp_path / "data")
    options = AppOptions(
        run_snapshotter=False, join_recovery=False, supervise=False, discover_pipelines=False
    )
    async with App(plan, settings, options, endpoints=services) as app:
        (tmp_path / "orchestrator.yaml").write_text(text)
        yield app


async def _leader(dsn: str) -> str | None:
    holder: str | None = await fetchval(
        dsn,
        "SELECT holder FROM leases WHERE name = 'leader/recovery_supervisor' "
        "AND expires_at > now()",
    )
    return holder


async def test_the_supervise_command_gets_a_dead_nodes_execution_finished_elsewhere(
    projector: App, services: ServiceEndpoints, tmp_path: Path
) -> None:
    dsn = projector.plan.dsn
    env = {**services.as_env(), "DATABASE_URL": dsn, "COLUMNS": "300"}
    log = tmp_path / "supervise.log"
    with log.open("wb") as out:
        supervisor = await asyncio.create_subprocess_exec(
            *CLI,
            "supervise",
            "--config",
            str(tmp_path / "orchestrator.yaml"),
            "--node-id",
            "supervisor-cli",
            env=env,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )

    def spec(node: str, holds: list[float]) -> dict[str, object]:
        return {
            "config": (tmp_path / "orchestrator.yaml").read_text(),
            "env": {**services.as_env(), "DATABASE_URL": dsn},
            "node_id": node,
            "projection": projector.plan.projection.name,
            "marks": str(tmp_path),
            "submit": [{"hold": h} for h in holds],
        }

    doomed = WorkerProcess(spec("node-a", [120]), tmp_path)
    survivor = WorkerProcess(spec("node-b", []), tmp_path)
    try:
        deadline = time.monotonic() + 60
        while not (await _leader(dsn) or "").startswith("supervisor-cli"):  # + its token
            assert supervisor.returncode is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.2)
        await asyncio.gather(doomed.start(), survivor.start())
        (eid,) = doomed.submitted
        deadline = time.monotonic() + 60
        while ("fetch:checkpointed", 1, "node-a") not in marks_of(tmp_path, eid):
            assert time.monotonic() < deadline, marks_of(tmp_path, eid)
            await asyncio.sleep(0.05)
        doomed.kill()

        assert projector.runtime is not None
        deadline = time.monotonic() + 60
        while True:
            state = await projector.runtime.read_model.load_execution(eid)
            if state is not None and state.status == "completed":
                break
            assert time.monotonic() < deadline, f"{state and state.status}\n{log.read_text()}"
            await asyncio.sleep(0.1)
        assert state.owner == "node-b"
        assert marks_of(tmp_path, eid)[-2:] == [
            ("fetch:part2", 2, "node-b"),
            ("report:done", 1, "node-b"),
        ]
    finally:
        doomed.kill()
        await asyncio.gather(doomed.close(), survivor.close())
        if supervisor.returncode is None:
            supervisor.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(supervisor.wait(), 60)
    said = " ".join(log.read_text().split())
    assert code == 0, said
    assert (
        f"execution {eid} of crash_pipeline: node_failure (owner node-a); resuming on node-b"
        in said
    )
