"""A worker node in its own process, for the crash and node-failure tests.

    python _worker.py SPEC.json

SPEC: ``config`` (YAML text of the seed's blocks), ``env`` (service endpoints),
``node_id``, ``projection``, ``marks`` (a folder), ``supervise`` (campaign for the
supervisor's leadership), ``submit`` (a list of ``input_data`` dicts: one execution of
``crash_pipeline`` each). The worker runs no processor: the test process does.

It prints one JSON object per line on stdout (``ready``, ``submitted``) and runs until
killed. Tasks record their side effects as lines ``<task>:<part> <attempt> <node>`` in
``<marks>/<execution_id>.log``, so a test can count what ran, and where.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import yaml

from orchestrator.app import App, AppOptions, AppPlan, plan_app
from orchestrator.config import Settings, load_config
from orchestrator.devstack import ServiceEndpoints
from orchestrator.runtime import Pipeline, TaskContext
from orchestrator.state import checkpoint


def mark(marks: Path, context: TaskContext, what: str) -> None:
    with (marks / f"{context.execution_id}.log").open("a") as f:
        f.write(f"{what} {context.attempt} {context.node_id}\n")
        f.flush()


def make_pipeline(marks: Path) -> Pipeline:
    """``init`` → ``fetch`` (checkpoints after part 1, then holds) → ``report``."""
    pipeline = Pipeline("crash_pipeline")

    @pipeline.task()
    async def init(context: TaskContext) -> dict[str, Any]:
        mark(marks, context, "init:done")
        return {"pages": 3}

    @pipeline.task(depends_on=["init"])
    async def fetch(init: dict[str, Any], context: TaskContext) -> dict[str, Any]:
        done = context.last_checkpoint
        if done is None:
            mark(marks, context, "fetch:part1")
            await checkpoint.save(name="after_part_1", data={"part1": "page-1", "progress": 0.5})
            mark(marks, context, "fetch:checkpointed")
            await asyncio.sleep(float(context.input_data.get("hold", 0)))
            done = {"part1": "page-1"}
        else:  # resumed: ``resume_hold`` keeps a recovery in flight for a fault test
            await asyncio.sleep(float(context.input_data.get("resume_hold", 0)))
        mark(marks, context, "fetch:part2")
        return {"pages": [done["part1"], "page-2", "page-3"][: init["pages"]]}

    @pipeline.task(depends_on=["fetch"])
    async def report(fetch: dict[str, Any], context: TaskContext) -> str:
        mark(marks, context, "report:done")
        return f"{len(fetch['pages'])} pages"

    return pipeline


def emit(event: str, **fields: Any) -> None:
    print(json.dumps({"event": event, **fields}), flush=True)


def plan_on(
    services: ServiceEndpoints,
    settings: Settings,
    *,
    dsn: str | None,
    node_id: str,
    data_dir: Path,
    projection_name: str | None = None,
    **overrides: Any,
) -> AppPlan:
    """``plan_app`` on ``services`` (the session's, or a worker's from its SPEC), by default
    with a projection name no other test uses."""
    return plan_app(
        settings,
        bootstrap=services.kafka_bootstrap,
        dsn=dsn,
        node_id=node_id,
        supports_idempotence=services.kafka_supports_idempotence,
        data_dir=data_dir,
        projection_name=projection_name or f"rm_{uuid.uuid4().hex[:8]}",
        **overrides,
    )


StartApp = Callable[..., Awaitable[App]]
"""The `start_app` fixture: `await start_app(**supervising_app's keyword arguments)`."""


@asynccontextmanager
async def worker_app(
    spec: dict[str, Any],
    pipeline: Pipeline,
    data_dir: Path,
    *,
    supervise: bool = False,
    **options: Any,
) -> AsyncIterator[App]:
    """A worker node's App from its SPEC (``config``, ``env``, ``node_id``, ``projection``
    if not the default): the runtime running ``pipeline``, no processor, no snapshotter
    and (unless ``supervise``) no supervisor: the test process runs those."""
    settings = load_config(spec["config"]).settings
    endpoints = ServiceEndpoints.from_env(spec["env"])
    plan = plan_on(
        endpoints,
        settings,
        dsn=endpoints.database_url,
        node_id=spec["node_id"],
        data_dir=data_dir,
        projection_name=spec.get("projection", "read_models"),
    )
    app_options = AppOptions(
        run_projector=False,
        run_snapshotter=False,
        supervise=supervise,
        pipelines=[pipeline],
        **options,
    )
    async with App(plan, settings, app_options, endpoints=endpoints) as app:
        yield app


async def main(spec: dict[str, Any]) -> None:
    marks = Path(spec["marks"])
    pipeline = make_pipeline(marks)
    supervise = spec.get("supervise", False)
    async with worker_app(spec, pipeline, marks / "data", supervise=supervise) as app:
        assert app.orchestrator is not None
        emit("ready", node_id=spec["node_id"])
        for input_data in spec.get("submit", []):
            eid = await app.orchestrator.submit(pipeline, {"input_data": input_data})
            emit("submitted", execution_id=eid)
        await app.wait()


if __name__ == "__main__":
    asyncio.run(main(json.loads(Path(sys.argv[1]).read_text())))


# --- the test side: the config, the test process's app and the workers -----------------


@asynccontextmanager
async def supervising_app(
    services: ServiceEndpoints,
    dsn: str,
    tmp_path: Path,
    *,
    name: str,
    node_id: str,
    crash_timeout: float,
    failover_timeout: float,
    max_attempts: int = 3,
    extra_yaml: str = "",
    snapshots: str | None = None,
    health_interval: float = 0.5,
    **options: Any,
) -> AsyncIterator[App]:
    """The test process's App (processor and recovery supervisor; a snapshotter writing to
    the ``snapshots`` URL if given) on fresh topics configured by `config_yaml`; its
    ``config_text`` is that YAML, for the workers."""
    prefix = f"test-{name}-{uuid.uuid4().hex[:8]}"
    text = (
        config_yaml(
            prefix,
            crash_timeout=crash_timeout,
            failover_timeout=failover_timeout,
            max_attempts=max_attempts,
            snapshots=snapshots,
            health_interval=health_interval,
        )
        + extra_yaml
    )
    settings = load_config(text).settings
    plan = plan_on(services, settings, dsn=dsn, node_id=node_id, data_dir=tmp_path / "data")
    app_options = AppOptions(
        run_snapshotter=snapshots is not None, discover_pipelines=False, **options
    )
    async with App(plan, settings, app_options, endpoints=services) as running:
        running.config_text = text  # type: ignore[attr-defined]
        yield running


def coordination_yaml(backend: str, etcd_endpoint: str) -> str:
    """The ``distributed.coordination`` block for ``backend`` (postgresql: the default)."""
    if backend == "postgresql":
        return ""
    return (
        f'distributed:\n  coordination:\n    backend: "{backend}"\n'
        f'    endpoints: ["http://{etcd_endpoint}"]\n'
    )


def state_management_yaml(prefix: str, snapshots: str | None = None, frequency: int = 50) -> str:
    """The ``state_management`` block: fresh topics ``<prefix>.pipeline.events`` and
    ``<prefix>.shared.events`` (2 partitions), snapshots every ``frequency`` events to the
    ``snapshots`` URL (none if not given)."""
    snapshot_block: dict[str, Any] = (
        {"enabled": True, "frequency": frequency, "storage": snapshots}
        if snapshots
        else {"enabled": False}
    )
    topics = {
        "pipeline_events": f"{prefix}.pipeline.events",
        "shared_events": f"{prefix}.shared.events",
    }
    block = {"event_store": {"topics": topics, "partitions": 2}, "snapshots": snapshot_block}
    return yaml.safe_dump({"state_management": block}, sort_keys=False)


def config_yaml(
    prefix: str,
    *,
    crash_timeout: float,
    failover_timeout: float,
    max_attempts: int = 3,
    snapshots: str | None = None,
    snapshot_frequency: int = 50,
    health_interval: float = 0.5,
    after_tasks: str = "init",
) -> str:
    """The seed's blocks with fresh topics and timeouts short enough for a test;
    automatic checkpoints after the task ``after_tasks``."""
    checkpointing = {
        "enabled": True,
        "strategy": "progressive",
        "progressive": {"after_tasks": [after_tasks], "min_interval": 0},
    }
    strategies = {
        "task_failure": {
            "action": "retry_from_checkpoint",
            "max_attempts": max_attempts,
            "backoff": "exponential",
            "base_delay": 0.05,
        },
        "pipeline_crash": {"action": "resume_from_last_checkpoint", "timeout": crash_timeout},
        "node_failure": {"action": "redistribute_tasks", "failover_timeout": failover_timeout},
    }
    health = {"interval": health_interval, "timeout": health_interval, "failure_threshold": 2}
    recovery = {"enabled": True, "strategies": strategies, "health_checks": health}
    return state_management_yaml(prefix, snapshots, snapshot_frequency) + yaml.safe_dump(
        {"checkpointing": checkpointing, "recovery": recovery}, sort_keys=False
    )


class WorkerProcess:
    """One ``_worker.py`` subprocess; ``await start()`` returns once it is ready."""

    def __init__(self, spec: dict[str, Any], folder: Path) -> None:
        self.spec = spec
        self.folder = folder
        self.node_id: str = spec["node_id"]
        self.proc: asyncio.subprocess.Process | None = None
        self.submitted: list[str] = []
        self.stderr_path = folder / f"{self.node_id}.stderr"

    async def start(self) -> None:
        spec_path = self.folder / f"{self.node_id}.json"
        spec_path.write_text(json.dumps(self.spec))
        with self.stderr_path.open("w") as stderr:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                str(Path(__file__)),
                str(spec_path),
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
            )
        want = len(self.spec.get("submit", []))
        while len(self.submitted) < want or want == 0:
            event = await self._next()
            if event["event"] == "submitted":
                self.submitted.append(event["execution_id"])
            if event["event"] == "ready" and want == 0:
                return

    async def _next(self) -> dict[str, Any]:
        assert self.proc is not None and self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 60)
        if not line:
            await self.proc.wait()
            raise RuntimeError(
                f"worker {self.node_id} exited ({self.proc.returncode}):\n"
                + self.stderr_path.read_text()[-4000:]
            )
        parsed: dict[str, Any] = json.loads(line)
        return parsed

    def kill(self) -> None:
        """SIGKILL: no cleanup, no lease release: a crash."""
        if self.proc is not None and self.proc.returncode is None:
            self.proc.kill()

    async def close(self) -> None:
        if self.proc is None:
            return
        if self.proc.returncode is None:
            self.proc.terminate()
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()


def marks_of(marks: Path, execution_id: str) -> list[tuple[str, int, str]]:
    """``(task:part, attempt, node)`` lines an execution's tasks wrote, in order."""
    path = marks / f"{execution_id}.log"
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        what, attempt, node = line.split(" ")
        out.append((what, int(attempt), node))
    return out


def resumed_marks(crashed: str, resumed: str) -> list[tuple[str, int, str]]:
    """The marks of an execution whose node ``crashed`` after fetch's checkpoint and that
    node ``resumed`` finished: init and fetch's part 1 once on the first, fetch again as
    attempt 2 from its checkpoint and report once on the second."""
    return [
        ("init:done", 1, crashed),
        ("fetch:part1", 1, crashed),
        ("fetch:checkpointed", 1, crashed),
        ("fetch:part2", 2, resumed),
        ("report:done", 1, resumed),
    ]
