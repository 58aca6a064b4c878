"""SIGKILL a pipeline worker at random points of a long stream of executions: every
execution completes, no task's completion is applied twice, and the read model equals
the full fold of the log.

The worker (``_stream_worker.py``, its own process) runs executions of a 20-task
pipeline, 16 at a time; it is SIGKILLed at 20 random points of the stream (right after
some events were applied, or a little later) and a new worker node starts each time.
The test process runs the projection processor and the recovery supervisor, with the
pipeline's code: the executions a killed worker left running are resumed by it.
"""

from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from _databases import MakeDatabase
from _projector_support import applied_total, by_execution, compare_with_fold
from _stream_worker import TASKS, stream_pipeline
from _worker import supervising_app

from orchestrator.app import App
from orchestrator.devstack import ServiceEndpoints
from orchestrator.events.envelope import Envelope
from tests.faults._verifier import verify

pytestmark = pytest.mark.slow

# 50,000 was tried: on this loaded 2-core machine 20 worker restarts alone take ~9 min,
# and the supervisor's node, resuming hundreds of orphans at once, fell behind (see the
# lead's notes); 15,000 keeps the test near 5 minutes here.
EVENTS = 15_000
KILLS = 20
IN_FLIGHT = 16
WORKER = Path(__file__).with_name("_stream_worker.py")


@pytest.fixture
async def app(
    services: ServiceEndpoints, make_database: MakeDatabase, tmp_path: Path
) -> AsyncIterator[App]:
    async with supervising_app(
        services,
        await make_database(migrated=False),
        tmp_path,
        name="wkill",
        node_id="supervisor-node",
        crash_timeout=2.0,
        failover_timeout=2.0,
        pipelines=[stream_pipeline()],
    ) as running:
        yield running


class StreamWorker:
    """One ``_stream_worker.py`` process; ``start()`` returns once it is ready."""

    def __init__(self, app: App, services: ServiceEndpoints, folder: Path, n: int) -> None:
        self.node_id = f"worker-{n}"
        self.stderr = folder / f"{self.node_id}.stderr"
        self.spec = folder / f"{self.node_id}.json"
        self.spec.write_text(
            json.dumps(
                {
                    "config": app.config_text,  # type: ignore[attr-defined]
                    "env": {**services.as_env(), "DATABASE_URL": app.plan.dsn},
                    "node_id": self.node_id,
                    "projection": app.plan.projection.name,
                    "data_dir": str(folder / self.node_id),
                    "prefix": f"w{n}",
                    "count": 100_000,
                    "in_flight": IN_FLIGHT,
                }
            )
        )
        self.proc: asyncio.subprocess.Process | None = None

    def limit(self, count: int) -> None:
        spec = json.loads(self.spec.read_text())
        self.spec.write_text(json.dumps({**spec, "count": count}))

    async def start(self) -> None:
        with self.stderr.open("w") as sink:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                str(WORKER),
                str(self.spec),
                stdout=asyncio.subprocess.PIPE,
                stderr=sink,
            )
        await self.until("ready")

    async def until(self, event: str, seconds: float = 60) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            line = await asyncio.wait_for(self.proc.stdout.readline(), seconds)
            if not line:
                await self.proc.wait()
                tail = self.stderr.read_text()[-4000:]
                raise AssertionError(f"{self.node_id} exited {self.proc.returncode}:\n{tail}")
            if json.loads(line)["event"] == event:
                return

    async def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        await self.proc.wait()


async def _log_events(app: App) -> list[Envelope]:
    assert app.log is not None
    topic = app.plan.projection.pipeline_topic
    out: list[Envelope] = []
    for partition in range(2):  # config_yaml: 2 partitions
        out.extend([e async for _, e in app.log.read_range(topic, partition)])
    return out


async def _statuses(app: App) -> dict[str, tuple[str, str | None]]:
    assert app.runtime is not None
    rows = await app.runtime.pool.fetch(
        f"SELECT execution_id, status, owner FROM {app.plan.projection.tables.pipeline_states}"
    )
    return {r["execution_id"]: (r["status"], r["owner"]) for r in rows}


@pytest.mark.timeout(900)
async def test_sigkilled_worker_loses_and_repeats_nothing(
    app: App, services: ServiceEndpoints, tmp_path: Path
) -> None:
    assert app.runtime is not None and app.orchestrator is not None
    dsn, projection = app.plan.dsn, app.plan.projection
    rng = random.Random(20240117)
    thresholds = sorted(rng.uniform(0.02, 0.85) * EVENTS for _ in range(KILLS))
    started = time.monotonic()
    for n, threshold in enumerate(thresholds):
        worker = StreamWorker(app, services, tmp_path, n)
        await worker.start()
        deadline = time.monotonic() + 120
        while await applied_total(dsn, projection.name) < threshold:
            assert worker.proc is not None and worker.proc.returncode is None, (
                worker.stderr.read_text()[-4000:]
            )
            assert time.monotonic() < deadline, f"stuck below {int(threshold)} events"
            await asyncio.sleep(0.02)
        await asyncio.sleep(rng.choice([0.0, rng.uniform(0, 0.5)]))
        await worker.kill()
    print(f"{KILLS} kills in {time.monotonic() - started:.0f}s")

    # The last worker runs enough executions to the end to pass EVENTS in all.
    done = await applied_total(dsn, projection.name)
    per_execution = 3 * TASKS  # a lower bound of a 20-task execution's events
    last = StreamWorker(app, services, tmp_path, KILLS)
    last.limit(max(1, (EVENTS - done) // per_execution + 1))
    await last.start()
    t0 = time.monotonic()
    await last.until("done", 600)
    ran = await applied_total(dsn, projection.name) - done
    print(f"last worker: {ran} events in {time.monotonic() - t0:.0f}s")

    # Every execution any worker started completes (the supervisor resumes the orphans).
    deadline = time.monotonic() + 180
    while True:
        statuses = await _statuses(app)
        open_ = {e: s for e, s in statuses.items() if s[0] != "completed"}
        if not open_:
            break
        assert time.monotonic() < deadline, f"{len(open_)} not completed: {list(open_.items())[:5]}"
        await asyncio.sleep(0.5)
    await last.kill()
    print(f"all {len(statuses)} executions completed after {time.monotonic() - started:.0f}s")

    events = await _log_events(app)
    deadline = time.monotonic() + 60
    while await applied_total(dsn, projection.name) < len(events):
        assert time.monotonic() < deadline, "the processor did not catch up"
        await asyncio.sleep(0.2)
    print(f"{len(events)} events of {len(statuses)} executions, {KILLS} SIGKILLs")
    assert len(events) >= EVENTS

    # No task's completion was applied twice, and every task completed once.
    rows = await app.runtime.pool.fetch(
        f"SELECT execution_id, payload->>'task_id' AS task, count(*) AS n"
        f" FROM {projection.tables.execution_events}"
        " WHERE outcome = 'applied' AND event_type = 'TaskCompleted'"
        " GROUP BY 1, 2"
    )
    assert [tuple(r) for r in rows if r["n"] != 1] == []
    assert len(rows) == TASKS * len(statuses)
    recovered = {eid for eid, _, how in app.orchestrator.recoveries if how == "completed"}
    print(f"{len(recovered)} executions resumed by the supervisor")
    assert recovered  # the kills did orphan executions, and they were resumed

    # The read model (what a resume loads) equals the full fold of the log.
    assert await compare_with_fold(dsn, by_execution(events), projection) == []
    verdict = await verify(
        services.kafka_bootstrap, projection.pipeline_topic, dsn, [str(e.event_id) for e in events]
    )
    verdict.check()
