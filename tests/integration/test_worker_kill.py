"""SIGKILL pipeline workers at random points of a long stream of executions: every
execution completes, no task's completion is applied twice, and the read model and
restore equal the full fold of the log, for every execution.

Two worker nodes (``_stream_worker.py``, each its own process) run executions of a
20-task pipeline, many at a time, and join the recovery ring. At 20 random points of the
stream (right after some events were written, or a little later) the older worker is
SIGKILLed. Its replacement is started first; while it starts, the workers start no new
execution but finish theirs, so a slow start-up cannot stretch the stream far past its
length. The test process runs the projection processor, the snapshotter and the
recovery supervisor, with the pipeline's code. The supervisor places the orphans of a
killed worker on live nodes only (the dead one keeps a valid heartbeat lease for a
while: its presence session tells it is gone), at most ``max_concurrent_recoveries``
per node at a time.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from _projector_support import applied_total, by_execution, compare_with_fold
from _stream_worker import TASKS, stream_pipeline
from _worker import StartApp

from orchestrator.app import App
from orchestrator.devstack import ServiceEndpoints
from orchestrator.events.codec import default_codec
from orchestrator.events.envelope import Envelope
from orchestrator.events.fold import fold
from orchestrator.projections import PostgresEventArchive
from orchestrator.snapshots import SnapshotCodec, snapshot_history
from orchestrator.snapshots.postgres import PostgresSnapshotIndex
from tests.faults._verifier import verify

pytestmark = pytest.mark.slow

# Overridable to try the test quickly by hand; CI runs the defaults.
EVENTS = int(os.environ.get("WORKER_KILL_EVENTS", 50_000))
KILLS = int(os.environ.get("WORKER_KILL_KILLS", 20))
IN_FLIGHT = 24  # executions per worker at once
WORKER = Path(__file__).with_name("_stream_worker.py")


@pytest.fixture
async def app(start_app: StartApp, tmp_path: Path) -> App:
    return await start_app(
        name="wkill",
        node_id="supervisor-node",
        # Leases of 10 s (half the timeouts): dozens of executions per worker renew
        # theirs, and a loaded machine must not make them lapse. A killed worker's
        # presence ends at once, so its orphans go nowhere near it.
        crash_timeout=20.0,
        failover_timeout=20.0,
        health_interval=1.0,
        snapshots=f"file://{tmp_path / 'snapshots'}",
        pipelines=[stream_pipeline()],
    )


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
                    "stop_file": str(folder / "stop"),
                    "pause_file": str(folder / "pause"),
                    "join_recovery": True,
                }
            )
        )
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        _started.append(self)
        with self.stderr.open("w") as sink:
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                str(WORKER),
                str(self.spec),
                stdout=asyncio.subprocess.PIPE,
                stderr=sink,
            )
        await self.until("ready", 180)

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
        if self.proc.returncode is None:
            self.proc.kill()
        await self.proc.wait()


_started: list[StreamWorker] = []


@pytest.fixture(autouse=True)
async def _no_worker_outlives_the_test(app: App) -> AsyncIterator[None]:
    yield
    while _started:
        worker = _started.pop()
        if worker.proc is not None:
            await worker.kill()


async def _log_events(app: App) -> list[Envelope]:
    assert app.log is not None
    topic = app.plan.projection.pipeline_topic
    out: list[Envelope] = []
    for partition in range(2):  # config_yaml: 2 partitions
        out.extend([e async for _, e in app.log.read_range(topic, partition)])
    return out


async def _written(app: App) -> int:
    """Records on the pipeline topic: the stream's progress, however far the processor
    lags behind it."""
    assert app.log is not None
    ends = await app.log.end_offsets(app.plan.projection.pipeline_topic)
    return sum(ends.values())


async def _statuses(app: App) -> dict[str, tuple[str, str | None]]:
    assert app.runtime is not None
    rows = await app.runtime.pool.fetch(
        f"SELECT execution_id, status, owner FROM {app.plan.projection.tables.pipeline_states}"
    )
    return {r["execution_id"]: (r["status"], r["owner"]) for r in rows}


async def _restore_equals_fold(app: App, events: list[Envelope]) -> list[str]:
    """Execution ids whose restore (newest snapshot + archive) differs from the fold."""
    tables = app.plan.projection.tables
    pool = await asyncpg.create_pool(app.plan.dsn, min_size=1, max_size=2)
    try:
        assert app.snapshot_store is not None
        restorer = snapshot_history(
            store=app.snapshot_store,
            index=PostgresSnapshotIndex(pool),
            archive=PostgresEventArchive(
                pool,
                default_codec(),
                events_table=tables.execution_events,
                checkpoints_table=tables.checkpoints,
            ),
            codec=SnapshotCodec(),
        )
        return [
            eid
            for eid, history in by_execution(events).items()
            if (await restorer.latest(eid)).state != fold(history)
        ]
    finally:
        await pool.close()


@pytest.mark.timeout(900)
async def test_sigkilled_workers_lose_and_repeat_nothing(
    app: App, services: ServiceEndpoints, tmp_path: Path
) -> None:
    assert app.runtime is not None and app.orchestrator is not None
    dsn, projection = app.plan.dsn, app.plan.projection
    rng = random.Random(20240117)
    thresholds = sorted(rng.uniform(0.03, 0.9) * EVENTS for _ in range(KILLS))
    started = time.monotonic()
    workers = [StreamWorker(app, services, tmp_path, n) for n in range(2)]
    for worker in workers:
        await worker.start()
    for n, threshold in enumerate(thresholds, start=2):
        deadline = time.monotonic() + 120
        while await _written(app) < threshold:
            for w in workers:
                assert w.proc is not None and w.proc.returncode is None, w.stderr.read_text()[
                    -4000:
                ]
            assert time.monotonic() < deadline, f"stuck below {int(threshold)} events"
            await asyncio.sleep(0.02)
        # The replacement starts first, so the stream never stops; meanwhile the workers
        # start no new execution (they finish theirs), so a slow start-up cannot make
        # the stream run far past EVENTS.
        pause = tmp_path / "pause"
        pause.touch()
        replacement = StreamWorker(app, services, tmp_path, n)
        await replacement.start()
        pause.unlink()
        await asyncio.sleep(rng.choice([0.0, rng.uniform(0, 0.5)]))
        victim = workers.pop(0)
        await victim.kill()
        workers.append(replacement)
    print(f"{KILLS} kills in {time.monotonic() - started:.0f}s")

    # The two live workers run on until the stream passes EVENTS, then start nothing new.
    deadline = time.monotonic() + 180
    while await _written(app) < EVENTS:
        assert time.monotonic() < deadline, "the stream did not reach EVENTS"
        await asyncio.sleep(0.1)
    (tmp_path / "stop").touch()
    for worker in workers:
        await worker.until("done", 180)

    # Every execution any worker started completes (the supervisor resumes the orphans).
    deadline = time.monotonic() + 180
    while True:
        statuses = await _statuses(app)
        open_ = {e: s for e, s in statuses.items() if s[0] != "completed"}
        if not open_:
            break
        assert time.monotonic() < deadline, f"{len(open_)} not completed: {list(open_.items())[:5]}"
        await asyncio.sleep(0.5)
    for worker in workers:
        await worker.kill()
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
    recovered = await app.runtime.pool.fetchval(
        f"SELECT count(DISTINCT execution_id) FROM {projection.tables.execution_events}"
        " WHERE event_type = 'ExecutionOwnershipTaken' AND outcome = 'applied'"
    )
    print(f"{recovered} executions taken over after a kill")
    assert recovered  # the kills did orphan executions, and they were resumed

    # The read model (what a resume loads) and restore equal the full fold of the log.
    assert await compare_with_fold(dsn, by_execution(events), projection) == []
    assert await _restore_equals_fold(app, events) == []
    verdict = await verify(
        services.kafka_bootstrap, projection.pipeline_topic, dsn, [str(e.event_id) for e in events]
    )
    verdict.check()
    print(f"test took {time.monotonic() - started:.0f}s")
