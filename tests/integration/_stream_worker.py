"""A pipeline worker in its own process that runs a stream of executions, for the
worker kill test.

    python _stream_worker.py SPEC.json

SPEC: ``config`` (YAML text of the seed's blocks), ``env`` (service endpoints),
``node_id``, ``projection``, ``prefix`` and ``count`` (it submits the executions
``<prefix>-0`` .. ``<prefix>-<count-1>`` of ``stream_pipeline``), ``in_flight`` (how many
run at once), ``stop_file`` (once it exists, no new execution starts), ``pause_file``
(while it exists, no new execution starts), ``join_recovery``
(resume orphans the supervisor assigns here). It prints ``{"event": "ready"}`` and, once
all its executions ended, ``{"event": "done"}`` on stdout, then runs until killed (a
SIGKILL is the point).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from _worker import emit, worker_app

from orchestrator.events.errors import OrchestratorStateError
from orchestrator.runtime import Pipeline

TASKS = 20


def stream_pipeline() -> Pipeline:
    """``t0`` → ``t1`` → ... → ``t19``: each task returns its input's count plus one."""
    pipeline = Pipeline("stream_pipeline")
    previous: str | None = None
    for n in range(TASKS):
        name = f"t{n}"

        async def task(inputs: dict[str, Any]) -> dict[str, int]:
            [before] = list(inputs.values()) or [{"n": 0}]
            return {"n": int(before["n"]) + 1}

        pipeline.add(task, task_id=name, depends_on=[previous] if previous else [])
        previous = name
    return pipeline


async def main(spec: dict[str, Any]) -> None:
    pipeline = stream_pipeline()
    join_recovery = bool(spec.get("join_recovery", False))
    async with worker_app(
        spec, pipeline, Path(spec["data_dir"]), join_recovery=join_recovery
    ) as app:
        orchestrator = app.orchestrator
        assert orchestrator is not None
        emit("ready", node_id=spec["node_id"])
        numbers = iter(range(int(spec["count"])))
        stop = Path(spec["stop_file"]) if spec.get("stop_file") else None
        pause = Path(spec["pause_file"]) if spec.get("pause_file") else None

        async def lane() -> None:
            for n in numbers:  # the lanes share the iterator: each number runs once
                while pause is not None and pause.exists():  # noqa: ASYNC110 (a file, set by
                    await asyncio.sleep(0.05)  # another process: no event to wait on)
                if stop is not None and stop.exists():
                    return
                eid = f"{spec['prefix']}-{n}"
                try:
                    await orchestrator.run_pipeline(
                        pipeline, {"input_data": {"n": n}}, execution_id=eid
                    )
                except OrchestratorStateError as exc:  # e.g. lease lost when overloaded: the
                    # supervisor finishes it; the test checks every execution completed
                    print(f"{eid}: {exc}", file=sys.stderr, flush=True)

        await asyncio.gather(*(lane() for _ in range(int(spec["in_flight"]))))
        emit("done")
        await app.wait()


if __name__ == "__main__":
    asyncio.run(main(json.loads(Path(sys.argv[1]).read_text())))
