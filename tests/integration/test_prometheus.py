"""Real Prometheus scrapes every long-running process under load; every dashboard panel's
query returns data, and the alert rules and scrape config pass ``promtool``.

The processes run as a deployment runs them: ``project``, ``snapshots run``,
``supervise`` and ``api`` as CLI processes, and a worker node (``_metrics_worker.py``)
that keeps running a pipeline with checkpoints and a task retried from checkpoint.
Debian's ``prometheus`` (the ``prometheus`` fixture) scrapes each of them every second.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import _worker
import httpx
import pytest
from _databases import MakeDatabase
from _projector_support import CLI

from orchestrator.devstack import PrometheusServer, ServiceEndpoints
from orchestrator.devstack._ports import free_ports
from orchestrator.monitoring import DASHBOARDS, dashboard, panel_queries

pytestmark = pytest.mark.slow

HERE = Path(__file__).parent
RATE_INTERVAL = "1m"  # what Grafana puts for $__rate_interval at this scrape interval
DATA_WITHIN_S = 220.0  # pytest-timeout (300 s) covers the fixture too


def config_yaml(prefix: str, snapshots: Path) -> str:
    blocks = _worker.config_yaml(
        prefix,
        crash_timeout=120,
        failover_timeout=5,
        snapshots=f"file://{snapshots}",
        snapshot_frequency=5,
        after_tasks="crunch",
    )
    return (
        blocks
        + """caching:
  levels:
    l1:
      type: "memory"
      size: "10MB"
      ttl: 60
monitoring:
  metrics: [state_operations_total, state_operation_duration, state_size_bytes,
            checkpoint_count, recovery_attempts, cache_hit_rate, sync_lag_seconds]
  dashboards: [state_overview, checkpoint_history, recovery_timeline, distributed_state_health]
"""
    )


class Processes:
    """Child processes, each logging to a file; all stopped (SIGTERM, then SIGKILL) at the end."""

    def __init__(self, folder: Path, env: dict[str, str]) -> None:
        self.folder = folder
        self.env = env
        self.running: dict[str, asyncio.subprocess.Process] = {}

    async def start(self, name: str, *argv: str, stdout: int | None = None) -> None:
        with (self.folder / f"{name}.log").open("wb") as log:
            self.running[name] = await asyncio.create_subprocess_exec(
                *argv, env=self.env, stdout=stdout or log, stderr=log
            )

    async def cli(self, name: str, *args: str) -> None:
        await self.start(name, *CLI, *args)

    def logs(self) -> str:
        return "\n".join(
            f"--- {name}:\n{(self.folder / f'{name}.log').read_text()[-3000:]}"
            for name in self.running
        )

    async def stop(self) -> None:
        for proc in self.running.values():
            if proc.returncode is None:
                proc.terminate()
        for proc in self.running.values():
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()


@pytest.fixture
async def stack(
    services: ServiceEndpoints,
    make_database: MakeDatabase,
    prometheus: PrometheusServer,
    tmp_path: Path,
) -> AsyncIterator[Processes]:
    """The worker, processor, snapshotter, supervisor and API, each scraped by Prometheus."""
    config = tmp_path / "orchestrator.yaml"
    config.write_text(config_yaml(f"test-metrics-{uuid.uuid4().hex[:8]}", tmp_path / "snaps"))
    dsn = await make_database(migrated=True)
    env = {**services.as_env(), "DATABASE_URL": dsn, "COLUMNS": "300"}
    worker_port, processor_port, snapshotter_port, supervisor_port, api_port = free_ports(5)
    procs = Processes(tmp_path, env)
    try:
        spec = tmp_path / "worker.json"
        spec.write_text(
            json.dumps(
                {
                    "config": config.read_text(),
                    "env": env,
                    "node_id": "metrics-worker",
                    "data_dir": str(tmp_path / "worker"),
                    "metrics_address": f"127.0.0.1:{worker_port}",
                }
            )
        )
        worker = HERE / "_metrics_worker.py"
        await procs.start("worker", sys.executable, str(worker), str(spec), stdout=subprocess.PIPE)
        stdout = procs.running["worker"].stdout
        assert stdout is not None
        ready = await asyncio.wait_for(stdout.readline(), 120)
        assert b"ready" in ready, procs.logs()
        cfg = ("--config", str(config))
        await procs.cli("processor", "project", *cfg, "--metrics-address", str(processor_port))
        await procs.cli(
            "snapshotter", "snapshots", "run", *cfg, "--metrics-address", str(snapshotter_port)
        )
        await procs.cli(
            "supervisor", "supervise", *cfg, "--node-id", "metrics-supervisor",
            "--metrics-address", str(supervisor_port),
        )  # fmt: skip
        await procs.cli("api", "api", "--port", str(api_port), *cfg)
        for job, port in (
            ("worker", worker_port),
            ("processor", processor_port),
            ("snapshotter", snapshotter_port),
            ("supervisor", supervisor_port),
            ("api", api_port),
        ):
            prometheus.set_targets(f"orchestrator-state-{job}", [f"127.0.0.1:{port}"])
        yield procs
    finally:
        await procs.stop()
        for job in ("worker", "processor", "snapshotter", "supervisor", "api"):
            prometheus.set_targets(f"orchestrator-state-{job}", [])


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["promtool", *args], capture_output=True, text=True, timeout=60)


def test_promtool_accepts_the_rules_and_the_sample_config(prometheus: PrometheusServer) -> None:
    shipped = Path(__file__).parents[2] / "orchestrator" / "monitoring" / "prometheus"
    for args in (
        ("check", "rules", str(shipped / "alerts.yml")),
        ("check", "config", str(shipped / "prometheus.yml")),
        ("check", "config", str(prometheus.config_path)),  # the test's, with the rules
    ):
        done = _promtool(*args)
        assert done.returncode == 0, done.stdout + done.stderr


# Recorded where it happens, not only created at zero: each must have counted something.
COUNTED = (
    'orchestrator_state_recovery_attempts_total{kind="task_retry",outcome="succeeded"}',
    'orchestrator_state_operations_total{component="writer",operation="save_checkpoint"}',
    'orchestrator_state_operations_total{component="state_manager"}',
    'orchestrator_state_operations_total{component="api"}',
    "orchestrator_state_checkpoints_saved_total",
    "orchestrator_state_events_applied_total",
    "orchestrator_state_snapshots_written_total",
    "orchestrator_state_sync_lag_seconds_count",
    'orchestrator_state_leader{election="recovery_supervisor"}',
)


async def _empty_queries(prometheus: PrometheusServer) -> list[str]:
    empty = []
    for expr in COUNTED:
        data = await prometheus.query(f"sum({expr}) > 0")
        if not data["result"]:
            empty.append(f"nothing counted: {expr}")
    for name in DASHBOARDS:
        for title, expr in panel_queries(dashboard(name)):
            data = await prometheus.query(expr.replace("$__rate_interval", RATE_INTERVAL))
            if not data["result"]:
                empty.append(f"{name} / {title}: {expr}")
    return empty


async def test_every_dashboard_panel_returns_data_from_the_stack_under_load(
    stack: Processes, prometheus: PrometheusServer
) -> None:
    began = time.monotonic()
    deadline = began + DATA_WITHIN_S
    empty = await _empty_queries(prometheus)
    while empty and time.monotonic() < deadline:
        await asyncio.sleep(2)
        empty = await _empty_queries(prometheus)
        for name, proc in stack.running.items():
            assert proc.returncode is None, f"{name} exited\n{stack.logs()}"

    print(f"every panel had data {time.monotonic() - began:.1f}s after the processes started")
    up = await prometheus.query("up")
    jobs = {r["metric"]["job"]: r["value"][1] for r in up["result"]}
    assert empty == [], f"panels without data: {empty}\nup: {jobs}\n{stack.logs()}"
    assert all(jobs.get(f"orchestrator-state-{j}") == "1" for j in ("worker", "processor",
               "snapshotter", "supervisor", "api")), jobs  # fmt: skip
    async with httpx.AsyncClient(base_url=prometheus.url, timeout=10) as client:
        rules = (await client.get("/api/v1/rules")).json()["data"]["groups"]
    evaluated = [r for group in rules for r in group["rules"]]
    assert len(evaluated) >= 5
    assert all(r["health"] == "ok" for r in evaluated), evaluated
