"""Resume after SIGKILL: seconds from a new process's start to its resumed run finishing.

Three processes, as in production:

1. the bench itself: Kafka and PostgreSQL (env vars or started locally), topics, and
   the projection processor;
2. a *worker* that creates an execution of a two-task pipeline, finishes the first
   task, and is SIGKILLed (by the bench) while the second task runs;
3. a *resumer*, a fresh Python process, that takes the execution over and runs it to
   its end; it reports the time from its own start (before imports) to the lease taken
   and to the run finished.

The execution lease's ttl is the default (30 s): a resume faster than that shows the
dead owner was recognised (its database session ended), not waited out.
Run: ``orchestrator-state bench resume`` (or ``python -m orchestrator.bench.resume``).
"""

from __future__ import annotations

import time

_T0 = time.time()  # the resumer's start, before the heavy imports

import argparse  # noqa: E402
import asyncio  # noqa: E402
import os  # noqa: E402
import signal  # noqa: E402
import statistics  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import uuid  # noqa: E402
from collections.abc import Sequence  # noqa: E402
from typing import Any  # noqa: E402

TASK_SECONDS = 600.0


def _pipeline(slow: bool) -> Any:
    from orchestrator.runtime import Pipeline

    pipeline = Pipeline("bench_resume")

    @pipeline.task()
    async def first() -> int:
        return 1

    @pipeline.task(depends_on=["first"])
    async def second(first: int) -> int:
        if slow:
            print("READY", flush=True)
            await asyncio.sleep(TASK_SECONDS)
        return first + 1

    return pipeline


async def _runtime(dsn: str, bootstrap: str, topic: str, node: str) -> Any:
    from orchestrator.projections import ProjectionSettings
    from orchestrator.state import StateRuntime, StateSettings

    projection = ProjectionSettings(
        name="read_models", pipeline_topic=topic, shared_topic=f"{topic}-shared"
    )
    settings = StateSettings(node_id=node, projection=projection)
    return await StateRuntime.connect(dsn=dsn, bootstrap_servers=bootstrap, settings=settings)


async def _child(role: str, dsn: str, bootstrap: str, topic: str, eid: str) -> None:
    from orchestrator.bench._rss import peak_rss_mb
    from orchestrator.runtime import CheckpointPolicy, Orchestrator, Policies

    runtime = await _runtime(dsn, bootstrap, topic, f"bench-{role}-{os.getpid()}")
    pipeline = _pipeline(slow=role == "worker")
    policies = Policies(checkpoints=CheckpointPolicy.of(enabled=False))
    orchestrator = Orchestrator(runtime, pipelines=[pipeline], policies=policies)
    try:
        if role == "worker":
            await orchestrator.run_pipeline(pipeline, execution_id=eid)
            return
        started = time.time()
        result = await orchestrator.resume_pipeline(execution_id=eid, wait=120.0)
        done = time.time()
        print(f"RESUMED {result.status} {_T0} {started} {done} {peak_rss_mb()}", flush=True)
    finally:
        await runtime.close()


Resumed = tuple[float, float, float | None]
"""Seconds from start to finished, seconds of it until imports were done, peak RSS MB."""


async def _one(dsn: str, bootstrap: str, topic: str) -> Resumed:
    eid = f"bench_resume_{uuid.uuid4().hex[:10]}"
    base = [sys.executable, "-m", "orchestrator.bench.resume"]
    args = ["--dsn", dsn, "--bootstrap", bootstrap, "--topic", topic, "--execution", eid]
    # bytecode written and reused, as a pip-installed product's restart loads it
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    worker = subprocess.Popen(  # noqa: ASYNC220 - started once, read from a thread
        [*base, "worker", *args], stdout=subprocess.PIPE, text=True, env=env
    )
    assert worker.stdout is not None
    line = await asyncio.to_thread(worker.stdout.readline)
    if "READY" not in line:
        worker.kill()
        raise RuntimeError(f"worker did not start its second task: {line!r}")
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    out = await asyncio.to_thread(
        subprocess.run,
        [*base, "resumer", *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    found = [x for x in out.stdout.splitlines() if x.startswith("RESUMED")]
    if not found:
        raise RuntimeError(f"resumer failed: {out.stderr[-2000:]}")
    _, status, t0, _started, done, peak = found[0].split()
    if status != "completed":
        raise RuntimeError(f"resumed run ended {status}")
    rss = None if peak == "None" else float(peak)
    return float(done) - float(t0), float(_started) - float(t0), rss


async def run_resume_bench(runs: int) -> list[Resumed]:
    """``runs`` crash-and-resume cycles; (start→finished, start→imports done, the
    resuming process's peak RSS) each."""
    from orchestrator.devstack import local_services
    from orchestrator.events import TopicsConfig, TopicSpec, ensure_topics
    from orchestrator.projections import ProjectionSettings, Projector, prepare

    async with local_services(s3=False) as endpoints:
        bootstrap = endpoints.kafka.bootstrap_servers
        dsn = endpoints.database_url
        assert dsn is not None
        topic = f"bench-resume-{uuid.uuid4().hex[:8]}"
        topics = TopicsConfig(
            pipeline=TopicSpec(name=topic, partitions=1),
            shared=TopicSpec(name=f"{topic}-shared", partitions=1),
        )
        await ensure_topics(bootstrap, topics.specs())
        projection = ProjectionSettings(
            name="read_models", pipeline_topic=topic, shared_topic=f"{topic}-shared"
        )
        await prepare(projection, dsn, bootstrap)
        async with Projector(projection, dsn, bootstrap) as projector:
            task = asyncio.create_task(projector.run())
            try:
                return [await _one(dsn, bootstrap, topic) for _ in range(runs)]
            finally:
                projector.request_stop()
                await task


def render(results: list[Resumed]) -> str:
    totals = [t for t, _, _ in results]
    lines = [
        "resume after SIGKILL (execution lease ttl 30 s), seconds from the new process's "
        "start to its resumed run finished:",
        *(
            f"  run {i + 1}: {t:.2f} s (of which Python start + imports + connect {s:.2f} s;"
            f" peak RSS {rss} MB)"
            for i, (t, s, rss) in enumerate(results)
        ),
        f"  median {statistics.median(totals):.2f} s (target <= 3 s)",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("role", nargs="?", default="bench", choices=["bench", "worker", "resumer"])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dsn")
    parser.add_argument("--bootstrap")
    parser.add_argument("--topic")
    parser.add_argument("--execution")
    a = parser.parse_args(argv)
    if a.role == "bench":
        print(render(asyncio.run(run_resume_bench(a.runs))))
    else:
        asyncio.run(_child(a.role, a.dsn, a.bootstrap, a.topic, a.execution))


if __name__ == "__main__":
    main()
