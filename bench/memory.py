"""The memory backend at the speed of a unit test: figures printed, never asserted.

What it measures, with no server (``orchestrator.connect(backend="memory")``):

- ``unit_test``: what one of a user's unit tests does: connect, run a three-task
  pipeline that saves a checkpoint, list and restore it, close; ``tests`` times;
- ``checkpoint_saves``: one task saving ``saves`` checkpoints back to back (each
  decided, Avro-encoded, appended and folded before ``save`` returns), then every one
  restored (the fold of the archive up to it).

Run ``orchestrator-state bench memory``.
"""

from __future__ import annotations

import statistics
import time
import uuid
from typing import Any

from rich.table import Table

import orchestrator
from orchestrator.bench import _tables as tables
from orchestrator.bench._rss import peak_rss_mb, rss_mb
from orchestrator.runtime import Pipeline
from orchestrator.state import checkpoint


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 3)


def _unit_test_pipeline() -> Pipeline:
    pipeline = Pipeline(f"bench-memory-{uuid.uuid4().hex[:8]}")

    @pipeline.task()
    async def fetch(context: Any) -> dict[str, int]:
        await checkpoint.save("fetched", {"pages": 3, "progress": 0.3})
        return {"pages": 3}

    @pipeline.task(depends_on=["fetch"])
    async def summarize(fetch: dict[str, int]) -> str:
        return f"{fetch['pages']} pages"

    @pipeline.task(depends_on=["summarize"])
    async def publish(summarize: str) -> str:
        return summarize.upper()

    return pipeline


async def _one_unit_test() -> None:
    async with orchestrator.connect(backend="memory", supervise=False) as state:
        result = await state.run(_unit_test_pipeline())
        [saved] = [c for c in await checkpoint.list(execution_id=result.execution_id)
                   if c.name == "fetched"]  # fmt: skip
        restored = await checkpoint.restore(saved.id)
        assert restored.data == {"pages": 3, "progress": 0.3}


async def run_memory_bench(*, tests: int = 50, saves: int = 100) -> dict[str, Any]:
    """The figures (see the module docstring)."""
    await _one_unit_test()  # warm up: schemas parsed, modules imported
    durations = []
    for _ in range(tests):
        started = time.perf_counter()
        await _one_unit_test()
        durations.append(time.perf_counter() - started)

    save_times: list[float] = []
    pipeline = Pipeline(f"bench-memory-saves-{uuid.uuid4().hex[:8]}")

    @pipeline.task()
    async def work(context: Any) -> int:
        for step in range(saves):
            started = time.perf_counter()
            await checkpoint.save(f"step-{step}", {"step": step, "progress": step / saves})
            save_times.append(time.perf_counter() - started)
        return saves

    async with orchestrator.connect(backend="memory", supervise=False) as state:
        started = time.perf_counter()
        result = await state.run(pipeline)
        run_s = time.perf_counter() - started
        listed = [
            c
            for c in await checkpoint.list(execution_id=result.execution_id)
            if c.name.startswith("step-")
        ]
        restore_times = []
        for info in listed:
            started = time.perf_counter()
            await checkpoint.restore(info.id)
            restore_times.append(time.perf_counter() - started)
    return {
        "unit_test": {
            "tests": tests,
            "p50_ms": _ms(statistics.median(durations)),
            "max_ms": _ms(max(durations)),
            "total_s": round(sum(durations), 3),
        },
        "checkpoint_saves": {
            "saves": saves,
            "run_ms": _ms(run_s),
            "save_p50_ms": _ms(statistics.median(save_times)),
            "saves_per_s": round(saves / sum(save_times)),
            "restores": len(restore_times),
            "restore_p50_ms": _ms(statistics.median(restore_times)),
            "restore_all_ms": _ms(sum(restore_times)),
            "rss_mb": rss_mb(),
            "peak_rss_mb": peak_rss_mb(),
        },
    }


def render(result: dict[str, Any]) -> Table:
    """A table of the figures."""
    table = tables.table("memory backend (no servers)", "run", "figure", "value")
    for run, figures in result.items():
        for name, value in figures.items():
            table.add_row(run, name, f"{value}")
    return table
