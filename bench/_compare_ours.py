"""Our side of ``bench compare``: the existing benches where one measures the workload
(checkpoint, append, restore, project), the runtime (``App``) for the rest."""

from __future__ import annotations

import asyncio
import json
import os
import random
import statistics
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from orchestrator.app import App, AppOptions, plan_app
from orchestrator.bench._compare_common import (
    chat_message,
    dir_bytes,
    public_bytes,
    saver_figures,
)
from orchestrator.bench.append import run_append_bench
from orchestrator.bench.checkpoint import run_checkpoint_bench
from orchestrator.bench.project import run_project_bench
from orchestrator.bench.restore import run_restore_bench
from orchestrator.commands import CreateExecution, StartTask, StartValidation, SucceedValidation
from orchestrator.config import load_config
from orchestrator.devstack import ServiceEndpoints
from orchestrator.runtime import Pipeline
from orchestrator.state import checkpoint

CHILD = [sys.executable, "-m", "orchestrator.bench._compare_child"]


def config_yaml(prefix: str, *, snapshots: bool = False, storage: str = "") -> str:
    """The seed's blocks on fresh topics; automatic checkpoints off (a task's outputs are
    durable in its TaskCompleted event, as a DBOS step's are in its step row)."""
    snap = f'\n    storage: "file://{storage}"' if storage else ""
    return f"""
state_management:
  event_store:
    topics:
      pipeline_events: "{prefix}.pipeline.events"
      shared_events: "{prefix}.shared.events"
    partitions: 2
  snapshots:
    enabled: {"true" if snapshots else "false"}
    frequency: 100{snap}
checkpointing:
  enabled: false
"""


@asynccontextmanager
async def app(
    endpoints: ServiceEndpoints,
    dsn: str,
    work: Path,
    *,
    projector: bool = False,
    snapshots: bool = False,
    pipelines: tuple[Pipeline, ...] = (),
) -> AsyncIterator[tuple[App, str]]:
    """An App on fresh topics of ``dsn``; yields it and its config text."""
    prefix = f"cmp-{uuid.uuid4().hex[:8]}"
    text = config_yaml(prefix, snapshots=snapshots, storage=str(work / "snapshots"))
    settings = load_config(text).settings
    plan = plan_app(
        settings,
        bootstrap=endpoints.kafka_bootstrap,
        dsn=dsn,
        node_id="bench-compare",
        supports_idempotence=endpoints.kafka_supports_idempotence,
        data_dir=work / "data",
        projection_name="read_models",
    )
    options = AppOptions(
        run_projector=projector,
        run_snapshotter=snapshots,
        join_recovery=False,
        supervise=False,
        pipelines=pipelines,
        discover_pipelines=False,
        configure_process=True,
    )
    async with App(plan, settings, options, endpoints=endpoints) as running:
        yield running, text


async def checkpoint_saves(
    *, saves: int, executions: int, per_execution: int, size: int
) -> dict[str, dict[str, float]]:
    """``bench checkpoint`` (env services): concurrency 1, then ``executions`` at once."""
    result = await run_checkpoint_bench(
        saves=saves, executions=executions, saves_per_execution=per_execution, payload_bytes=size
    )
    out = {}
    for key, name in (("one execution", "c1"), (f"{executions} concurrent executions", "c100")):
        f = result[key]
        out[name] = {
            "per_s": f["saves_per_s"],
            "p50_ms": f["latency_ms_p50"],
            "p99_ms": f["latency_ms_p99"],
        }
    return out


def _chain(pipeline_id: str, tasks: int) -> Pipeline:
    pipeline = Pipeline(pipeline_id)
    output = "x" * 1024
    previous: list[str] = []
    for i in range(tasks):

        async def task() -> str:
            return output

        pipeline.add(task, task_id=f"t{i}", depends_on=previous)
        previous = [f"t{i}"]
    return pipeline


async def task_overhead(
    endpoints: ServiceEndpoints, dsn: str, work: Path, *, runs: int, tasks: int
) -> dict[str, float]:
    """Median wall ms of a 1-task and a ``tasks``-task chain; marginal ms per task."""
    one_p, many_p = _chain("cmp_one", 1), _chain("cmp_many", tasks)
    async with app(endpoints, dsn, work, pipelines=(one_p, many_p)) as (running, _):
        orch = running.orchestrator
        assert orch is not None
        for _ in range(3):
            await orch.run_pipeline(many_p)
        one, many = [], []
        for _ in range(runs):
            t0 = time.perf_counter()
            await orch.run_pipeline(one_p)
            one.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            await orch.run_pipeline(many_p)
            many.append(time.perf_counter() - t0)
    m1, mn = statistics.median(one) * 1000, statistics.median(many) * 1000
    return {"one_ms": m1, "many_ms": mn, "per_task_ms": (mn - m1) / (tasks - 1)}


async def append(bootstrap: str, *, events: int, batch_size: int, warmup: int) -> dict[str, float]:
    result = await run_append_bench(
        bootstrap, events, batch_size=batch_size, concurrency=4, warmup_events=warmup
    )
    return {"events_per_s": result["append_events_per_s"]}


async def restore(server_dsn: str, *, events: int, samples: int) -> dict[str, float]:
    result = await run_restore_bench(
        events=events, every=100, samples=samples, backends=("postgres",), dsn=server_dsn
    )
    p50, p99 = result["postgres"]["latest"]
    cold_p50, _ = result["postgres"]["latest_cold"]
    return {"p50_ms": p50, "p99_ms": p99, "cold_p50_ms": cold_p50}


async def storage(
    endpoints: ServiceEndpoints, dsn: str, work: Path, kafka_logs: Path | None, *, steps: int
) -> dict[str, float]:
    """Bytes after ``steps`` ``checkpoint.save`` of a chat history growing ~1 KB per step,
    once the processor and the snapshotter have caught up."""
    async with app(endpoints, dsn, work, projector=True, snapshots=True) as (running, text):
        rt = running.runtime
        assert rt is not None
        writer = await rt.create_execution(
            CreateExecution(execution_id="chat", pipeline_id="chat", tasks=("talk",))
        )
        await writer.execute_many(
            [StartValidation(), SucceedValidation(), StartTask(task_id="talk")]
        )
        rng = random.Random(5)
        history: list[dict[str, str]] = []
        with checkpoint.task_scope(writer, "talk"):
            for i in range(steps):
                history.append(chat_message(rng, i))
                await checkpoint.save(name=f"step_{i}", data={"messages": history})
        await rt.wait_for(rt.written(), timeout=900)  # ~1 MB checkpoints: slow to fold
        await asyncio.sleep(3)  # the snapshotter's last batch
        topic = load_config(text).settings.state_management.event_store.topics.pipeline_events
    kafka = dir_bytes(kafka_logs, topic) if kafka_logs is not None else 0
    files = dir_bytes(work / "data") + dir_bytes(work / "snapshots")
    return {**await public_bytes(dsn), "kafka_bytes": kafka, "files_bytes": files}


async def fold(*, events: int, rate: int, seconds: float, warmup: int) -> dict[str, float]:
    """``bench project``: events/s folded into PostgreSQL, append→visible p50/p99."""
    result = await run_project_bench(events, rate, seconds, warmup_events=warmup)
    return {k: v for k, v in result.items() if isinstance(v, int | float)}


# --- resume after SIGKILL -------------------------------------------------------------------


async def _spawn(spec: dict[str, Any], folder: Path) -> asyncio.subprocess.Process:
    path = folder / f"{spec['side']}-{spec['phase']}.json"
    path.write_text(json.dumps(spec))
    log = (folder / f"{spec['side']}-{spec['phase']}.log").open("ab")
    return await asyncio.create_subprocess_exec(
        *CHILD, str(path), stdout=log, stderr=log, env=child_env(spec.get("env", {}))
    )


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment plus ``extra``, writing bytecode: a restarted process
    of a pip-installed product loads compiled modules, as the peers' (installed) do;
    ``PYTHONDONTWRITEBYTECODE`` would make ours alone recompile every module each start."""
    env = {**os.environ, **extra}
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def _find_mark(marks: Path, line: str) -> float | None:
    if marks.exists():
        for got in marks.read_text().splitlines():
            if got.startswith(line):
                return float(got.split()[-1])
    return None


async def _wait_mark(
    marks: Path, line: str, proc: asyncio.subprocess.Process, limit: float
) -> float:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        found = _find_mark(marks, line)
        if found is not None:
            return found
        if proc.returncode is not None:
            raise RuntimeError(f"{line!r}: the child exited with {proc.returncode}")
        await asyncio.sleep(0.02)
    raise TimeoutError(f"{line!r} not seen in {limit:g}s")


async def _kill(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        proc.kill()
    await proc.wait()


async def kill_and_resume(spec: dict[str, Any], folder: Path, limit: float = 120) -> float:
    """Seconds from spawning the restarted process to its second task starting again."""
    marks = folder / f"{spec['side']}-{spec['run_id']}.marks"
    spec = {**spec, "marks": str(marks)}
    first = await _spawn({**spec, "phase": "run"}, folder)
    try:
        await _wait_mark(marks, "second run", first, limit)
    finally:
        await _kill(first)  # SIGKILL, mid-task
    spawned = time.time()
    second = await _spawn({**spec, "phase": "resume"}, folder)
    try:
        started = await _wait_mark(marks, "second resume", second, limit)
    finally:
        await _kill(second)
    return started - spawned


async def ours_resume(endpoints: ServiceEndpoints, dsn: str, work: Path, *, run_id: str) -> float:
    """Our run killed and restarted, this process running the projection processor."""
    async with app(endpoints, dsn, work, projector=True) as (running, text):
        spec = {
            "side": "ours",
            "run_id": f"exec_{run_id}",
            "dsn": dsn,
            "config": text,
            "env": endpoints.as_env(),
            "projection": running.plan.projection.name,
        }
        return await kill_and_resume(spec, work)


def _saver_config(work: Path, prefix: str) -> Path:
    """A config file of fresh topics for ``AsyncKafkaSaver.from_config``."""
    work.mkdir(parents=True, exist_ok=True)
    config = work / f"{prefix}.yaml"
    config.write_text(config_yaml(prefix))
    return config


async def kafka_saver(
    dsn: str, work: Path, *, saves: int, threads: int, per_thread: int, size: int
) -> dict[str, float]:
    """``AsyncKafkaSaver.aput`` (fresh topics, the env's Kafka, ``dsn``): c1 and c100."""
    from orchestrator.langgraph import AsyncKafkaSaver

    config = _saver_config(work, f"cmp-lg-{uuid.uuid4().hex[:8]}")
    saver = AsyncKafkaSaver.from_config(
        config,
        environ={**os.environ, "DATABASE_URL": dsn},
        data_dir=work / "data",
        run_projector=False,  # aput never reads: nothing waits on the read model
        node_id="bench-compare",
    )
    async with saver:
        await saver.setup()
        return await saver_figures(
            saver, saves=saves, threads=threads, per_thread=per_thread, size=size
        )
