"""The timeline page served by the query API, looked at by a real (headless) Chromium.

A pipeline runs with the real runtime (a flaky task retried from its checkpoint); the
API serves it over HTTP with uvicorn; the JSON endpoints are checked against the
fold, and Chromium renders the page (JavaScript included: ``--dump-dom`` shows what
the script drew) and takes a screenshot, whose path the test prints.

Chromium comes from Debian: ``apt-get update && apt-get install -y chromium``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from _api_support import running
from _history_support import log_events, write_snapshots
from _state_stack import Stack, state_stack

from orchestrator.debug import StateDebugger, Target, to_jsonable
from orchestrator.debug.web import install_snapshot_states
from orchestrator.events.envelope import Position
from orchestrator.projections.api import ApiSettings, create_app
from orchestrator.runtime import (
    CheckpointPolicy,
    Orchestrator,
    Pipeline,
    Policies,
    RetryPolicy,
    TaskContext,
)
from orchestrator.snapshots import FilesystemSnapshotStore
from orchestrator.state import checkpoint, use_runtime

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / ".orchestrator-state" / "screenshots"
CHROMIUM_INSTALL = "apt-get update && apt-get install -y chromium"


@dataclass
class Served:
    stack: Stack
    url: str
    execution_id: str
    last_sequence: int


def _research_pipeline() -> Pipeline:
    pipeline = Pipeline("research_assistant")

    async def work(seconds: float) -> None:
        await asyncio.sleep(seconds)

    @pipeline.task()
    async def init() -> str:
        await work(0.15)
        return "ready"

    @pipeline.task(depends_on=["init"])
    async def validate_input(init: str) -> bool:
        await work(0.1)
        return True

    @pipeline.task(depends_on=["validate_input"])
    async def prepare_query(validate_input: bool) -> str:
        await work(0.2)
        return "quantum computing applications"

    @pipeline.task(depends_on=["prepare_query"])
    async def web_search(prepare_query: str, context: TaskContext) -> dict[str, Any]:
        done = (context.last_checkpoint or {}).get("pages", 0)
        for page in range(done, done + 2):
            await work(0.12)
            await checkpoint.save(name=f"page_{page + 1}", data={"pages": page + 1})
        if context.attempt < 3:
            raise ConnectionError(f"search API rate limited (attempt {context.attempt})")
        return {"results": 20, "pages": done + 2}

    @pipeline.task(depends_on=["web_search"])
    async def analyze_results(web_search: dict[str, Any]) -> float:
        await work(0.3)
        return 0.85

    @pipeline.task(depends_on=["analyze_results"])
    async def generate_report(analyze_results: float) -> str:
        await work(0.2)
        return f"report (quality {analyze_results})"

    return pipeline


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
async def served(kafka: Any, postgres: str) -> AsyncIterator[Served]:
    async with state_stack(kafka, postgres, lease_ttl=3.0) as stack:
        with use_runtime(stack.runtime):
            orchestrator = Orchestrator(
                stack.runtime,
                policies=Policies(
                    retry=RetryPolicy(max_attempts=3, base_delay=0.2, max_delay=0.4),
                    checkpoints=CheckpointPolicy.of(enabled=False),
                ),
            )
            result = await orchestrator.run_pipeline(
                _research_pipeline(), context={"user_id": "user_123", "input_data": {"q": "qc"}}
            )
            await stack.runtime.wait_for(stack.runtime.written())
        settings = ApiSettings(
            database_url=stack.dsn, tables=stack.projection.tables, projection=stack.projection.name
        )
        port = _free_port()
        server = uvicorn.Server(
            uvicorn.Config(create_app(settings), host="127.0.0.1", port=port, log_config=None)
        )
        task = asyncio.create_task(server.serve())
        try:
            while not server.started:
                assert not task.done(), "the API did not start"
                await asyncio.sleep(0.05)
            last = await stack.pool.fetchval(
                "SELECT last_sequence FROM pipeline_states WHERE execution_id = $1",
                result.execution_id,
            )
            yield Served(stack, f"http://127.0.0.1:{port}", result.execution_id, last)
        finally:
            server.should_exit = True
            await task


async def test_the_json_behind_the_page_matches_the_history(served: Served) -> None:
    base = f"{served.url}/executions/{served.execution_id}"
    async with httpx.AsyncClient(timeout=30) as client:
        page = await client.get(f"{base}/timeline")
        timeline = (await client.get(f"{base}/timeline.json")).json()
        states = {
            seq: (await client.get(f"{base}/state", params={"at": seq})).json()
            for seq in range(1, served.last_sequence + 1)
        }
        missing = await client.get(f"{served.url}/executions/exec_nobody/timeline.json")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<script src" not in page.text and "<link" not in page.text
    assert "https://" not in page.text  # self-contained: nothing from a CDN
    assert missing.status_code == 404

    tasks = {t["task_id"]: t for t in timeline["tasks"]}
    assert list(tasks) == [
        "init",
        "validate_input",
        "prepare_query",
        "web_search",
        "analyze_results",
        "generate_report",
    ]
    search = tasks["web_search"]
    assert [s["outcome"] for s in search["spans"]] == ["failed", "failed", "completed"]
    assert [s["attempt"] for s in search["spans"]] == [1, 2, 3]
    assert len(search["retries"]) == 2
    assert [c["name"] for c in timeline["checkpoints"]] == [f"page_{i}" for i in range(1, 7)]
    assert [p["status"] for p in timeline["phases"]] == [
        "initialized",
        "validating",
        "running",
        "completed",
    ]
    assert timeline["execution"]["status"] == "completed"

    debugger = StateDebugger(pool=served.stack.pool, projection=served.stack.projection)
    for seq, body in states.items():
        expected = (await debugger.replay(served.execution_id, Target(sequence=seq))).state
        assert body["state"] == json.loads(json.dumps(to_jsonable(expected))), seq
        assert body["event"]["sequence"] == seq
        if seq > 1:
            assert body["before"]["last_sequence"] == seq - 1


async def test_the_state_endpoint_answers_the_same_from_snapshots(
    served: Served, tmp_path: Path
) -> None:
    stack = served.stack
    first = await stack.pool.fetchrow(
        'SELECT topic, partition, "offset" FROM execution_events WHERE execution_id = $1'
        ' ORDER BY "offset" LIMIT 1',
        served.execution_id,
    )
    history = await log_events(stack, served.execution_id, Position(*first))
    store = FilesystemSnapshotStore(tmp_path)
    assert await write_snapshots(stack.pool, store, history, every=5) > 0
    settings = ApiSettings(
        database_url=stack.dsn, tables=stack.projection.tables, projection=stack.projection.name
    )
    plain, fast = create_app(settings), create_app(settings)
    install_snapshot_states(fast, stack.projection.tables, snapshot_store=store)
    async with running(plain) as a, running(fast) as b:
        for seq in (1, 2, 7, 11, served.last_sequence):
            url = f"/executions/{served.execution_id}/state"
            one = (await a.get(url, params={"at": seq})).json()
            two = (await b.get(url, params={"at": seq})).json()
            assert (one["source"], two["source"]) == ("archive", "snapshot+archive")
            for key in ("state", "before", "event", "at"):
                assert one[key] == two[key], (seq, key)


async def test_chromium_renders_the_timeline_and_takes_a_screenshot(served: Served) -> None:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip(f"chromium is not installed; install it with: {CHROMIUM_INSTALL}")
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / "timeline.png"
    shot.unlink(missing_ok=True)
    # An event in the middle: web_search's second attempt has just failed.
    rows = await served.stack.pool.fetch(
        "SELECT sequence, event_type, payload FROM execution_events WHERE execution_id = $1"
        " AND outcome = 'applied' ORDER BY \"offset\"",
        served.execution_id,
    )
    failures = [r["sequence"] for r in rows if r["event_type"] == "TaskFailed"]
    at = failures[1]
    url = f"{served.url}/executions/{served.execution_id}/timeline?at={at}"
    dom = await _chromium(chromium, "--dump-dom", url)
    assert "web_search" in dom and "generate_report" in dom
    assert f'State after event <span id="state-seq">#{at} — TaskFailed' in dom
    assert "<svg" in dom and "attempt 2: failed" in dom  # the drawn span's tooltip
    assert "rate limited (attempt 2)" in dom  # the state panel at that event
    await _chromium(chromium, f"--screenshot={shot}", "--window-size=1400,900", url)
    assert shot.exists() and shot.stat().st_size > 20_000
    print(f"\ntimeline screenshot: {shot}")


async def _chromium(binary: str, *args: str) -> str:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        proc = await asyncio.create_subprocess_exec(
            binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            f"--user-data-dir={profile}",
            "--virtual-time-budget=10000",
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 90)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
            raise
    assert proc.returncode == 0, err.decode(errors="replace")[-3000:]
    return out.decode(errors="replace")
