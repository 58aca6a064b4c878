"""The processes ``bench project`` measures: the processor(s) and the snapshotter run
as their own ``orchestrator-state`` processes, as in production; their progress (the
offsets they stored) and their resident memory."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg

from orchestrator.bench._rss import rss_mb
from orchestrator.events import TopicsConfig
from orchestrator.projections import stored_offsets

CLI = [sys.executable, "-c", "from orchestrator.cli import main; main()"]


def _processor(
    dsn: str, bootstrap: str, topics: TopicsConfig, batch_size: int, log_path: Path
) -> AbstractAsyncContextManager[asyncio.subprocess.Process]:
    return _cli_process(
        log_path,
        "project",
        "--database-url", dsn,
        "--bootstrap-servers", bootstrap,
        "--projection", "bench",
        "--pipeline-topic", topics.pipeline.name,
        "--shared-topic", topics.shared.name,
        "--batch-size", str(batch_size),
    )  # fmt: skip


def _snapshotter(
    dsn: str, bootstrap: str, topics: TopicsConfig, store: Path, log_path: Path
) -> AbstractAsyncContextManager[asyncio.subprocess.Process]:
    """The snapshotter beside the processor(s), as in production (its RSS is measured)."""
    return _cli_process(
        log_path,
        "snapshots", "run",
        "--database-url", dsn,
        "--bootstrap-servers", bootstrap,
        "--topic", topics.pipeline.name,
        "--store", f"file://{store}",
        "--name", "bench-snapshotter",
        "--archive-projection", "bench",
        "--metrics-address", "off",
    )  # fmt: skip


@asynccontextmanager
async def _cli_process(log_path: Path, *args: str) -> AsyncIterator[asyncio.subprocess.Process]:
    """``orchestrator-state <args>`` as its own process, logging to ``log_path``."""
    with log_path.open("ab") as sink:
        proc = await asyncio.create_subprocess_exec(
            *CLI, *args, stdout=asyncio.subprocess.DEVNULL, stderr=sink
        )
    try:
        yield proc
    finally:
        if proc.returncode is None:
            proc.terminate()
            await proc.wait()


def _died(log: Path) -> RuntimeError:
    return RuntimeError(f"processor exited:\n{log.read_text(errors='replace')[-2000:]}")


async def _offsets(conn: asyncpg.Connection, name: str = "bench") -> tuple[int, int]:
    """(partitions assigned, sum of next offsets) of the bench projection (or ``name``)."""
    try:
        rows = await stored_offsets(conn, [name])
    except asyncpg.UndefinedTableError:
        return 0, 0
    return len(rows), sum(r.next_offset for r in rows)


async def _wait_ready(conn: asyncpg.Connection, partitions: int, proc: Any, log: Path) -> None:
    while (await _offsets(conn))[0] < partitions:
        if proc.returncode is not None:
            raise _died(log)
        await asyncio.sleep(0.05)


async def _snapshotter_rss(
    conn: asyncpg.Connection, proc: Any, events: int, log: Path
) -> dict[str, Any]:
    """The snapshotter's RSS once it has read a tenth of the events, and at the end.
    Its stored offsets trail (its low watermark), so progress is its fold count as
    the archive knows it: the sum of the offsets it has moved past, bounded by time."""
    out: dict[str, Any] = {}
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        _, done = await _offsets(conn, "bench-snapshotter")
        if "snapshotter_rss_mb_at_tenth" not in out and done >= events // 10:
            out["snapshotter_rss_mb_at_tenth"] = rss_mb(proc.pid)
        if done >= events * 0.95:
            break
        if proc.returncode is not None:
            raise _died(log)
        await asyncio.sleep(0.05)
    out["snapshotter_rss_mb_end"] = rss_mb(proc.pid)
    return out
