"""``orchestrator-state demo``: a pipeline survives the SIGKILL of its worker.

1. Kafka and PostgreSQL: the ones the environment names, else started locally; the
   demo keeps to its own topics (``orchestrator-demo.<run>.*``) and its own database
   (``orchestrator_demo``, created on the same server), so it never writes into the
   user's read models or topics (``check --source log`` stays consistent);
2. this process runs the projection processor and the recovery supervisor, with the
   ``research_assistant`` code (so it can resume it);
3. a worker *process* starts one execution; once ``web_search`` has saved its first
   checkpoint, the worker is SIGKILLed: no cleanup, no lease released;
4. after ``pipeline_crash.timeout`` without progress (and the lease expired), the
   supervisor takes the execution over and finishes it from the checkpoint;
5. the timeline, the final state and the figures are printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from rich.console import Console

from orchestrator.app import App, AppOptions, plan_app
from orchestrator.config import load_config
from orchestrator.demo.research import build_pipeline
from orchestrator.demo.timeline import history, print_final_state, print_timeline
from orchestrator.devstack import KafkaChoice, ServiceEndpoints, local_services
from orchestrator.projections import ReadModelQueries

CRASH_TIMEOUT = 2.0
DEMO_DATABASE = "orchestrator_demo"
"""The demo's own database on the user's PostgreSQL server: its read models, offsets
and leases never mix with the user's."""
TOPIC_PREFIX = "orchestrator-demo"

CONFIG = """
state_management:
  event_store:
    topics:
      pipeline_events: "{prefix}.pipeline.events"
      shared_events: "{prefix}.shared.events"
    partitions: 3
  snapshots:
    enabled: false
checkpointing:
  enabled: true
  strategy: "progressive"
  progressive:
    after_tasks: ["prepare_query", "analyze_results"]
    min_interval: 0
recovery:
  enabled: true
  strategies:
    task_failure:
      action: "retry_from_checkpoint"
      max_attempts: 3
      backoff: "exponential"
    pipeline_crash:
      action: "resume_from_last_checkpoint"
      timeout: {timeout}
    node_failure:
      action: "redistribute_tasks"
      failover_timeout: 30
  health_checks:
    interval: 0.5
    timeout: 0.5
    failure_threshold: 3
distributed:
  synchronization:
    strategy: "strong"
"""


class DemoFailed(Exception):
    """The demo did not get where it should (the message says where it stopped)."""


@contextlib.contextmanager
def _folder(data_dir: Path | None) -> Iterator[Path]:
    if data_dir is not None:
        data_dir.mkdir(parents=True, exist_ok=True)
        yield data_dir
        return
    with tempfile.TemporaryDirectory(prefix="orchestrator-demo-") as tmp:
        yield Path(tmp)


async def run_demo(
    console: Console,
    *,
    data_dir: Path | None = None,
    kafka_impl: KafkaChoice | None = None,
    page_seconds: float = 1.0,
    patience: float = 60.0,
) -> dict[str, float]:
    """Run the demo; its figures (seconds). Raises ``DemoFailed`` if recovery fails."""
    with _folder(data_dir) as base:
        console.print(f"[dim]data in {base}[/]")
        started = time.monotonic()
        async with local_services(base / "services", s3=False, kafka_impl=kafka_impl) as ep:
            console.print(f"[dim]Kafka: {ep.kafka_description}; PostgreSQL: {ep.database_url}[/]")
            ready = time.monotonic()
            figures = await _demo(console, ep, base, page_seconds, patience)
            figures["services_start"] = ready - started
            figures["after_services"] = time.monotonic() - ready
            return figures


async def _demo(
    console: Console, ep: ServiceEndpoints, base: Path, page_seconds: float, patience: float
) -> dict[str, float]:
    run = uuid.uuid4().hex[:8]
    text = CONFIG.format(prefix=f"{TOPIC_PREFIX}.{run}", timeout=CRASH_TIMEOUT)
    settings = load_config(text).settings
    ep = dataclasses.replace(ep, database_url=await demo_database(ep.database_url))
    plan = plan_app(
        settings,
        bootstrap=ep.kafka_bootstrap,
        dsn=ep.database_url,
        node_id="supervisor",
        supports_idempotence=ep.kafka_supports_idempotence,
        data_dir=base / "data",
        projection_name=f"demo_{run}",
        max_replication=1,
    )
    pipeline = build_pipeline(page_seconds=page_seconds)
    options = AppOptions(run_snapshotter=False, pipelines=[pipeline], discover_pipelines=False)
    async with App(plan, settings, options, endpoints=ep) as app:
        assert app.runtime is not None and app.orchestrator is not None
        spec = {
            "config": text,
            "env": ep.as_env(),
            "node_id": "worker-1",
            "projection": plan.projection.name,
            "data_dir": str(base / "data"),
            "page_seconds": page_seconds,
            "context": {
                "user_id": "user_123",
                "input_data": {"query": "quantum computing applications"},
                "configuration": {"model": "simulated", "max_results": 20},
            },
        }
        spec_path = base / "worker.json"
        spec_path.write_text(json.dumps(spec))
        stderr_path = base / "worker.log"
        with stderr_path.open("w") as stderr:
            worker = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "orchestrator.demo.worker",
                str(spec_path),
                stdout=asyncio.subprocess.PIPE,
                stderr=stderr,
            )
        try:
            return await _crash_and_recover(console, app, worker, stderr_path, patience)
        finally:
            if worker.returncode is None:
                worker.kill()
            await worker.wait()


async def demo_database(dsn: str | None) -> str:
    """The DSN of the demo's own database on ``dsn``'s server, created if missing."""
    parts = urlsplit(dsn or "")
    if parts.scheme not in ("postgres", "postgresql"):
        raise DemoFailed("the demo needs DATABASE_URL as a postgresql:// URL")
    conn = await asyncpg.connect(dsn)
    try:
        exists = await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", DEMO_DATABASE)
        if not exists:
            with contextlib.suppress(asyncpg.DuplicateDatabaseError):  # another demo won
                await conn.execute(f"CREATE DATABASE {DEMO_DATABASE}")
    except asyncpg.InsufficientPrivilegeError as exc:
        raise DemoFailed(
            f"cannot create the demo's database {DEMO_DATABASE!r} ({exc}); create it, or "
            "run the demo with a role that may (CREATEDB)"
        ) from None
    finally:
        await conn.close()
    return urlunsplit(parts._replace(path=f"/{DEMO_DATABASE}"))


async def _crash_and_recover(
    console: Console,
    app: App,
    worker: asyncio.subprocess.Process,
    stderr_path: Path,
    patience: float,
) -> dict[str, float]:
    assert app.runtime is not None and app.orchestrator is not None and worker.stdout
    began = time.monotonic()
    line = await asyncio.wait_for(worker.stdout.readline(), patience)
    if not line:
        log = await asyncio.to_thread(stderr_path.read_text)
        raise DemoFailed(f"the worker exited early:\n{log[-3000:]}")
    eid = json.loads(line)["execution_id"]
    console.print(
        f"worker-1 (pid {worker.pid}) runs execution [bold]{eid}[/] of research_assistant"
    )
    queries = ReadModelQueries(app.runtime.postgres("the demo"), app.plan.projection)
    name = await _poll(
        patience,
        lambda: queries.last_checkpoint_name(eid, "web_search"),
        "web_search to save a checkpoint",
    )
    worker.kill()
    killed_at = datetime.now(UTC)
    killed = time.monotonic()
    await worker.wait()
    console.print(
        f"[bold red]💥 SIGKILL[/] worker-1 inside web_search, just after checkpoint [cyan]{name}[/]"
    )
    console.print(
        f"[dim]the supervisor resumes it after pipeline_crash.timeout = {CRASH_TIMEOUT:g}s "
        "without progress, once the execution's lease has expired…[/]"
    )
    state = await _poll(
        patience,
        lambda: _completed(app, eid),
        "the supervisor to finish the execution",
    )
    finished = time.monotonic()
    resumed = [r for r in app.orchestrator.recoveries if r[0] == eid]
    entries = await history(app.runtime.pool, app.plan.projection.tables.execution_events, eid)
    takeover = next((e for e in entries if e.event == "ExecutionOwnershipTaken"), None)
    console.print()
    print_timeline(console, entries, killed_at=killed_at, killed="worker-1 (no cleanup)")
    console.print()
    print_final_state(console, state)
    report = state.outputs or {}
    console.print(
        f"\n[bold]{report.get('title')}[/]: {report.get('word_count')} words; "
        f"findings: {', '.join(report.get('key_findings', []))}"
    )
    web = state.tasks["web_search"]
    reused = [t for t, ts in state.tasks.items() if ts.attempts == 1 and t in _before(entries)]
    resume_after = (takeover.at - killed_at).total_seconds() if takeover else float("nan")
    console.print(
        f"\n[bold green]✓ recovered[/]: resumed at [bold]web_search[/] attempt {web.attempts} "
        f"from checkpoint [cyan]{name}[/] {resume_after:.1f}s after the kill "
        f"(reason: {resumed[0][1] if resumed else '?'}); "
        f"reused without re-running: {', '.join(reused)}"
    )
    return {
        "kill_to_resume": resume_after,
        "kill_to_completed": finished - killed,
        "worker_run_to_kill": killed - began,
    }


def _before(entries: list[Any]) -> set[str]:
    """Tasks completed before the takeover."""
    done: set[str] = set()
    for entry in entries:
        if entry.event == "ExecutionOwnershipTaken":
            break
        if entry.event == "TaskCompleted":
            done.add(entry.payload["task_id"])
    return done


async def _completed(app: App, eid: str) -> Any:
    assert app.runtime is not None
    state = await app.runtime.read_model.load_execution(eid)
    if state is not None and state.status in ("failed", "cancelled"):
        raise DemoFailed(f"execution {eid} ended {state.status}: {state.error}")
    return state if state is not None and state.status == "completed" else None


async def _poll(patience: float, probe: Any, what: str) -> Any:
    deadline = time.monotonic() + patience
    while True:
        value = await probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise DemoFailed(f"gave up after {patience:g}s waiting for {what}")
        await asyncio.sleep(0.05)
