"""A worker node that keeps the stack busy, for the Prometheus test.

    python _metrics_worker.py SPEC.json

SPEC: ``config`` (YAML text), ``env`` (service endpoints), ``node_id``,
``metrics_address``. It runs the pipeline ``load`` (a task that saves checkpoints, and
one whose first attempt fails, so a retry from checkpoint follows) over and over, a
few executions at a time, until killed; it serves ``/metrics`` at ``metrics_address``
and prints ``{"event": "ready"}`` once it runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import uuid
from pathlib import Path
from typing import Any

from _worker import worker_app

from orchestrator.runtime import Pipeline, TaskContext
from orchestrator.state import StateManager, checkpoint
from orchestrator.state.errors import StateNotFound


class Flaky(Exception):
    """The first attempt of ``publish`` fails with this (retryable)."""


def make_pipeline() -> Pipeline:
    pipeline = Pipeline("load")

    @pipeline.task()
    async def crunch(context: TaskContext) -> dict[str, Any]:
        for step in range(3):
            await checkpoint.save(name=f"step_{step}", data={"progress": (step + 1) / 3})
        return {"rows": 3}

    @pipeline.task(depends_on=["crunch"])
    async def publish(crunch: dict[str, Any], context: TaskContext) -> str:
        if context.attempt == 1:
            raise Flaky("the first attempt always fails")
        return f"{crunch['rows']} rows"

    return pipeline


async def main(spec: dict[str, Any]) -> None:
    pipeline = make_pipeline()
    metrics_address = spec["metrics_address"]
    async with worker_app(
        spec, pipeline, Path(spec["data_dir"]), metrics_address=metrics_address
    ) as app:
        assert app.orchestrator is not None
        print(json.dumps({"event": "ready", "metrics": app.metrics and app.metrics.url}))
        sys.stdout.flush()
        reader = StateManager(app.runtime)
        while True:
            runs = [
                app.orchestrator.run_pipeline(pipeline, {"input_data": {"n": uuid.uuid4().hex}})
                for _ in range(3)
            ]
            for result in await asyncio.gather(*runs):
                with contextlib.suppress(StateNotFound):  # the processor may be behind
                    await reader.get_pipeline_state(result.execution_id)
            await asyncio.sleep(0.2)


if __name__ == "__main__":
    asyncio.run(main(json.loads(Path(sys.argv[1]).read_text())))
