"""Replay cost: ``orchestrator-state replay`` of one execution with 100,000 events.

Prints, never asserts (target: the latest state printed within 2 s):

- ``replay EXEC`` as a user runs it (a new process: Python start, imports, connect,
  newest snapshot + archived events after it, rich rendering), wall time p50/max;
- the same with ``--json``;
- ``replay EXEC --diff --last 1000 --json`` (streams 1,000 events with their changes);
- in-process ``StateDebugger.replay`` (latest, and at random sequences) p50/p99;
- a replay from the first event (``--no-snapshots``), in-process, for contrast.

The history is ``bench.restore.long_history`` (200 tasks retried many times, a
checkpoint every ~1,000 events, writer takeovers), archived in ``execution_events``
as the processor writes it (raw Avro bytes), with a snapshot every 100 events on the
local filesystem, indexed in ``snapshots``. PostgreSQL comes from ``DATABASE_URL`` or
is started locally. Run ``orchestrator-state bench replay [--events N]``.
"""

from __future__ import annotations

import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import asyncpg
from rich.table import Table

from orchestrator.bench._database import fresh_database
from orchestrator.bench._rss import children_peak_rss_mb, peak_rss_mb, rss_mb
from orchestrator.bench.restore import (
    EXECUTION,
    TOPIC,
    archive_history,
    long_history,
)
from orchestrator.debug import StateDebugger, Target
from orchestrator.events import ArchivedEvent, ExecutionState, Position, step
from orchestrator.projections import migrate
from orchestrator.snapshots import (
    FilesystemSnapshotStore,
    PendingSnapshot,
    PostgresSnapshotIndex,
    SnapshotWriter,
)

CLI = [sys.executable, "-c", "from orchestrator.cli import main; main()"]


async def _snapshots(
    pool: asyncpg.Pool, store: Any, archived: list[ArchivedEvent], every: int
) -> int:
    writer, index = SnapshotWriter(store), PostgresSnapshotIndex(pool)
    state: ExecutionState | None = None
    pending = []
    for i, a in enumerate(archived, start=1):
        state = step(state, a.envelope).state
        if i % every == 0 and state is not None:
            pending.append(PendingSnapshot(state, a.position, a.envelope.occurred_at))
    for start in range(0, len(pending), 200):
        await index.add(await writer.write_many(pending[start : start + 200]))
    return len(pending)


def _wall(args: list[str], runs: int) -> tuple[float, float, int]:
    """Median and max wall seconds of a CLI run, and its output size."""
    times, size = [], 0
    for _ in range(runs):
        t = time.perf_counter()
        done = subprocess.run([*CLI, *args], capture_output=True, check=False)
        times.append(time.perf_counter() - t)
        if done.returncode != 0:
            raise RuntimeError(f"{args}: exit {done.returncode}: {done.stderr.decode()[-2000:]}")
        size = len(done.stdout)
    return statistics.median(times), max(times), size


def _ms(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[round(0.99 * (len(ordered) - 1))] * 1000


async def run_replay_bench(
    *, events: int = 100_000, every: int = 100, runs: int = 5, dsn: str | None = None
) -> dict[str, Any]:
    history = long_history(events)
    archived = [ArchivedEvent(Position(TOPIC, 0, i), e) for i, e in enumerate(history)]
    result: dict[str, Any] = {"events": len(history), "every": every}
    async with fresh_database(dsn or os.environ.get("DATABASE_URL"), "replay") as db:
        conn = await asyncpg.connect(db)
        try:
            await migrate(conn)
            final = await archive_history(conn, archived)
        finally:
            await conn.close()
        result["tasks"], result["checkpoints"] = len(final.tasks), len(final.checkpoints)
        pool = await asyncpg.create_pool(db, min_size=1, max_size=2)
        with tempfile.TemporaryDirectory() as tmp:
            store = FilesystemSnapshotStore(tmp)
            try:
                result["snapshots"] = await _snapshots(pool, store, archived, every)
                debugger = StateDebugger(pool=pool)
                latest, at = [], []
                rng = random.Random(5)
                for _ in range(50):
                    t = time.perf_counter()
                    replayed = await debugger.replay(EXECUTION)
                    latest.append(time.perf_counter() - t)
                    assert replayed.state == final
                    t = time.perf_counter()
                    await debugger.replay(EXECUTION, Target(sequence=rng.randint(1, events - 1)))
                    at.append(time.perf_counter() - t)
                result["in_process_latest_ms"] = _ms(latest)
                result["in_process_at_ms"] = _ms(at)
                t = time.perf_counter()
                full = await StateDebugger(pool=pool, use_snapshots=False).replay(EXECUTION)
                result["from_first_event_s"] = time.perf_counter() - t
                assert full.state == final
            finally:
                await pool.close()
            base = [EXECUTION, "--database-url", db]
            result["cli_rich"] = _wall(["replay", *base], runs)
            result["cli_json"] = _wall(["replay", *base, "--json"], runs)
            result["cli_diff_last_1000"] = _wall(
                ["replay", *base, "--diff", "--last", "1000", "--json"], runs
            )
            result["cli_diff_last_1000_rich"] = _wall(
                ["replay", *base, "--diff", "--last", "1000"], runs
            )
            result["cli_startup"] = _wall(["replay", "--help"], runs)
            result["cli_peak_rss_mb"] = children_peak_rss_mb()
    result["in_process_rss_mb"], result["in_process_peak_rss_mb"] = rss_mb(), peak_rss_mb()
    return result


def render(result: dict[str, Any]) -> Table:
    table = Table(
        title=f"replay: one execution, {result['events']:,} events ({result['tasks']} tasks, "
        f"{result['checkpoints']} checkpoints), a snapshot every {result['every']} "
        f"({result['snapshots']:,} snapshots)"
    )
    table.add_column("what")
    table.add_column("p50", justify="right")
    table.add_column("max / p99", justify="right")
    table.add_column("output", justify="right")
    for label, key in (
        ("CLI `replay EXEC` (new process, rich)", "cli_rich"),
        ("CLI `replay EXEC --json`", "cli_json"),
        ("CLI `replay EXEC --diff --last 1000 --json`", "cli_diff_last_1000"),
        ("CLI `replay EXEC --diff --last 1000` (rich)", "cli_diff_last_1000_rich"),
        ("CLI `replay --help` (process start + imports only)", "cli_startup"),
    ):
        p50, worst, size = result[key]
        table.add_row(label, f"{p50:.2f} s", f"{worst:.2f} s", f"{size:,} B")
    lp50, lp99 = result["in_process_latest_ms"]
    sp50, sp99 = result["in_process_at_ms"]
    table.add_row("in-process replay, latest", f"{lp50:.1f} ms", f"{lp99:.1f} ms", "")
    table.add_row("in-process replay, random sequence", f"{sp50:.1f} ms", f"{sp99:.1f} ms", "")
    table.add_row(
        "in-process replay from the first event", f"{result['from_first_event_s']:.2f} s", "", ""
    )
    table.add_row("peak RSS of the CLI runs", f"{result['cli_peak_rss_mb']} MB", "", "")
    rss, peak = result["in_process_rss_mb"], result["in_process_peak_rss_mb"]
    table.add_row("RSS of this process (now / peak)", f"{rss} MB", f"{peak} MB", "")
    return table
