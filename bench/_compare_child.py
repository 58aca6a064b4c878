"""One side of ``bench compare``'s kill-and-resume workload, in its own process.

    python -m orchestrator.bench._compare_child SPEC.json

SPEC: ``side`` (``ours``, ``langgraph``, ``dbos``), ``phase`` (``run``: start a
two-task run whose second task hangs, so the parent can SIGKILL it; ``resume``:
continue that run as a restarted process would), ``dsn``, ``run_id``, ``marks`` (a
file) and, for ours, ``config`` (YAML) and ``env`` (service endpoints).

Each task appends ``<task> <phase> <time.time()>`` to ``marks`` when it starts, so the
parent measures the time from spawning the resuming process to the second task
starting again: process start, imports, connecting, recovery, all included.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

OUTPUT = "x" * 1024


def mark(spec: dict[str, Any], task: str) -> None:
    with Path(spec["marks"]).open("a") as f:
        f.write(f"{task} {spec['phase']} {time.time()}\n")


async def hang_if_first(spec: dict[str, Any]) -> None:
    if spec["phase"] == "run":
        await asyncio.sleep(3600)


async def run_langgraph(spec: dict[str, Any]) -> None:
    from typing import TypedDict

    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
    from langgraph.graph import END, START, StateGraph

    class State(TypedDict):
        first: str
        second: str

    async def first(state: State) -> dict[str, str]:
        mark(spec, "first")
        return {"first": OUTPUT}

    async def second(state: State) -> dict[str, str]:
        mark(spec, "second")
        await hang_if_first(spec)
        return {"second": OUTPUT}

    graph = StateGraph(State)
    graph.add_node("first", first)
    graph.add_node("second", second)
    graph.add_edge(START, "first")
    graph.add_edge("first", "second")
    graph.add_edge("second", END)
    async with AsyncPostgresSaver.from_conn_string(spec["dsn"]) as saver:
        if spec["phase"] == "run":
            await saver.setup()
        app = graph.compile(checkpointer=saver)
        config: Any = {"configurable": {"thread_id": spec["run_id"]}}
        await app.ainvoke({"first": "", "second": ""} if spec["phase"] == "run" else None, config)


def run_dbos(spec: dict[str, Any]) -> None:
    from dbos import DBOS, SetWorkflowID

    DBOS(
        config={
            "name": "bench_compare_resume",
            "system_database_url": spec["dsn"],
            "log_level": "WARNING",
        }
    )

    @DBOS.step()
    async def first() -> str:
        mark(spec, "first")
        return OUTPUT

    @DBOS.step()
    async def second() -> str:
        mark(spec, "second")
        await hang_if_first(spec)
        return OUTPUT

    @DBOS.workflow()
    async def pipeline() -> str:
        await first()
        return await second()

    DBOS.launch()  # a restarted process recovers its pending workflows here
    if spec["phase"] == "run":
        with SetWorkflowID(spec["run_id"]):
            asyncio.run(pipeline())
    else:
        time.sleep(3600)  # recovery runs on DBOS's threads; the parent kills us


async def run_ours(spec: dict[str, Any]) -> None:
    from orchestrator.app import App, AppOptions, plan_app
    from orchestrator.config import load_config
    from orchestrator.devstack import ServiceEndpoints
    from orchestrator.runtime import Pipeline, TaskContext

    pipeline = Pipeline("bench_compare_resume")

    @pipeline.task()
    async def first(context: TaskContext) -> str:
        mark(spec, "first")
        return OUTPUT

    @pipeline.task(depends_on=["first"])
    async def second(first: str, context: TaskContext) -> str:
        mark(spec, "second")
        await hang_if_first(spec)
        return OUTPUT

    settings = load_config(spec["config"]).settings
    endpoints = ServiceEndpoints.from_env(spec["env"])
    plan = plan_app(
        settings,
        bootstrap=endpoints.kafka_bootstrap,
        dsn=spec["dsn"],
        node_id=f"bench-{spec['phase']}",
        supports_idempotence=endpoints.kafka_supports_idempotence,
        data_dir=Path(spec["marks"]).parent / "data",
        projection_name=spec["projection"],
    )
    options = AppOptions(
        run_projector=False,
        run_snapshotter=False,
        join_recovery=False,
        supervise=False,
        pipelines=[pipeline],
        discover_pipelines=False,
    )
    async with App(plan, settings, options, endpoints=endpoints) as app:
        assert app.orchestrator is not None
        if spec["phase"] == "run":
            await app.orchestrator.run_pipeline(pipeline, execution_id=spec["run_id"])
        else:
            await app.orchestrator.resume_pipeline(execution_id=spec["run_id"])


def main() -> None:
    spec = json.loads(Path(sys.argv[1]).read_text())
    side = spec["side"]
    if side == "dbos":
        run_dbos(spec)
    elif side == "langgraph":
        asyncio.run(run_langgraph(spec))
    else:
        asyncio.run(run_ours(spec))


if __name__ == "__main__":
    main()
