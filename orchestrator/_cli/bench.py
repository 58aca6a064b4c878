"""``orchestrator-state bench ...``: benchmarks that print figures (they never assert).

Each command wraps a module of ``bench/``; Kafka and PostgreSQL come from the usual
env vars (``KAFKA_BOOTSTRAP_SERVERS``, ``DATABASE_URL``) or are started locally.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import typer
from rich.console import Console, RenderableType

from orchestrator._cli._output import JSON_OPTION, emit_json

app = typer.Typer(name="bench", help="Benchmarks (print figures).", no_args_is_help=True)


def _show(
    result: dict[str, Any], render: Callable[[dict[str, Any]], RenderableType], as_json: bool
) -> None:
    """The figures: a table for people, or one JSON object with ``--json``."""
    if as_json:
        emit_json(result)
    else:
        Console().print(render(result))


@contextmanager
def _bench_modules() -> Iterator[None]:
    """Imports of ``orchestrator.bench``: a module missing there is one line, not a traceback."""
    try:
        yield
    except ModuleNotFoundError as exc:
        raise typer.BadParameter(
            f"{exc}: run from a source checkout (the repository root on PYTHONPATH)"
        ) from exc


def _figures(name: str, as_json: bool, *args: Any, **sizes: Any) -> None:
    """Run ``orchestrator.bench``'s ``run_<name>_bench`` and show its figures with
    ``render_<name>`` (imported here: the CLI loads the benchmarks only when asked)."""
    with _bench_modules():
        import orchestrator.bench as bench

    run = getattr(bench, f"run_{name}_bench")
    _show(asyncio.run(run(*args, **sizes)), getattr(bench, f"render_{name}"), as_json)


@app.command("checkpoint")
def checkpoint(
    saves: int = typer.Option(2000, help="Saves in the one-execution run."),
    executions: int = typer.Option(100, help="Executions saving concurrently."),
    per_execution: int = typer.Option(50, help="Saves per execution in the concurrent run."),
    payload_bytes: int = typer.Option(10_240, help="Size of each checkpoint's data."),
    as_json: bool = JSON_OPTION,
) -> None:
    """``checkpoint.save`` saves/s and p50/p99 latency, durable (acks=all)."""
    _figures(
        "checkpoint",
        as_json,
        saves=saves,
        executions=executions,
        saves_per_execution=per_execution,
        payload_bytes=payload_bytes,
    )


@app.command("project")
def project(
    events: int = typer.Option(100_000, help="Events the processor catches up on."),
    rate: int = typer.Option(2000, help="Events/s appended in the latency run."),
    seconds: float = typer.Option(10.0, help="Length of the latency run."),
    batch_size: int = typer.Option(10_000, help="Max records per batch (catch-up run)."),
    partitions: int = typer.Option(12, help="Partitions of the pipeline topic."),
    processors: int = typer.Option(1, help="Group members in the catch-up run (scaling)."),
    warmup: float = typer.Option(1.0, help="Seconds appended before latency is measured."),
    warmup_events: int = typer.Option(20_000, help="An unreported catch-up run first."),
    snapshotter: bool = typer.Option(False, help="Run a snapshotter beside (its RSS)."),
    live: int | None = typer.Option(None, help="Executions in flight at once (default: all)."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Events/s folded into PostgreSQL by one processor; append→visible p50/p99 latency."""
    sizes = (events, rate, seconds, batch_size, partitions, processors, warmup, warmup_events)
    _figures("project", as_json, *sizes, snapshotter, live)


@app.command("restore")
def restore(
    events: int = typer.Option(100_000, help="Events of the one long execution."),
    every: int = typer.Option(100, help="A snapshot every N events."),
    samples: int = typer.Option(200, help="Restores measured per scenario."),
    backend: str = typer.Option("both", help="memory, postgres or both."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Restore latency (latest, at random sequences) vs a full replay; snapshot bytes."""
    backends = ("memory", "postgres") if backend == "both" else (backend,)
    _figures("restore", as_json, events=events, every=every, samples=samples, backends=backends)


@app.command("cache")
def cache(
    executions: int = typer.Option(200, help="Executions in the read model."),
    tasks: int = typer.Option(10, help="Tasks per execution (state size)."),
    samples: int = typer.Option(5000, help="Reads measured per level."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Latest-state read p50/p99 from L1, L2 (Redis), L3 (disk) and uncached, with RSS."""
    _figures("cache", as_json, executions=executions, tasks=tasks, samples=samples)


@app.command("append")
def append(
    events: int = typer.Option(100_000, help="Events appended in the timed run."),
    batch_size: int = typer.Option(1000, help="Events per append_batch call."),
    concurrency: int = typer.Option(4, help="append_batch calls in flight."),
    warmup: int = typer.Option(20_000, help="Events appended first, untimed."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Append throughput (acks=all, idempotent) and codec cost per ~300-byte event."""
    _figures(
        "append",
        as_json,
        None,
        events,
        batch_size=batch_size,
        concurrency=concurrency,
        warmup_events=warmup,
    )


@app.command("replay")
def replay(
    events: int = typer.Option(100_000, help="Events of the one long execution."),
    every: int = typer.Option(100, help="A snapshot every N events."),
    runs: int = typer.Option(5, help="CLI runs timed per scenario."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Wall time of `orchestrator-state replay` on a long execution (snapshot + archive)."""
    _figures("replay", as_json, events=events, every=every, runs=runs, dsn=None)


@app.command("resume")
def resume(
    runs: int = typer.Option(3, help="Crash-and-resume cycles."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Seconds from a new process's start to its resumed run finished, after a SIGKILL."""
    with _bench_modules():
        from orchestrator.bench import render_resume as render
        from orchestrator.bench import run_resume_bench

    results = asyncio.run(run_resume_bench(runs))
    if as_json:
        runs_out = [{"resumed_s": t, "imports_s": i, "peak_rss_mb": m} for t, i, m in results]
        emit_json({"runs": runs_out})
    else:
        Console().print(render(results))


@app.command("memory")
def memory(
    tests: int = typer.Option(50, help="Unit-test-like runs (connect, run, restore, close)."),
    saves: int = typer.Option(100, help="Checkpoints saved, then each restored."),
    as_json: bool = JSON_OPTION,
) -> None:
    """The memory backend (no servers): a unit test's time, checkpoint saves and restores."""
    _figures("memory", as_json, tests=tests, saves=saves)


@app.command("compare")
def compare(
    rounds: int = typer.Option(3, min=1, help="Interleaved rounds (medians over them)."),
    as_json: bool = JSON_OPTION,
    warmup_saves: int = typer.Option(
        5000, help="Sequential 10 KB saves each side makes first, unrecorded (0 skips them)."
    ),
    checkpoint_saves: int = typer.Option(
        1000, help="Sequential 10 KB saves per round (0 skips the checkpoint rows)."
    ),
    checkpoint_executions: int = typer.Option(100, help="Executions saving concurrently."),
    checkpoint_per_execution: int = typer.Option(20, help="Saves per concurrent execution."),
    saver_saves: int = typer.Option(
        500, help="Sequential AsyncKafkaSaver/AsyncPostgresSaver puts (0 skips them)."
    ),
    saver_threads: int = typer.Option(100, help="LangGraph threads putting concurrently."),
    saver_per_thread: int = typer.Option(10, help="Puts per concurrent LangGraph thread."),
    saver_bytes: int = typer.Option(10_240, help="Size of the checkpoints' channel value."),
    overhead_runs: int = typer.Option(
        10, help="Pipelines timed per size, per round (0 skips them)."
    ),
    append_events: int = typer.Option(50_000, help="Events appended per round (0 skips them)."),
    append_warmup: int = typer.Option(10_000, help="Events appended first, untimed."),
    restore_events: int = typer.Option(
        100_000, help="Events of the long history (restore_latest_100k; 0 skips it)."
    ),
    restore_small_events: int = typer.Option(
        10_000, help="Events of the shorter history (restore_latest_10k; 0 skips it)."
    ),
    restore_samples: int = typer.Option(100, help="Restores timed per round."),
    resume: bool = typer.Option(True, help="Run the kill-and-resume workload."),
    storage_steps: int = typer.Option(1000, help="Steps of the growing run (0 skips it)."),
    fold_events: int = typer.Option(50_000, help="Events folded, ours only (0 skips it)."),
    fold_rate: int = typer.Option(5000, help="Events/s in the append→visible run."),
    fold_seconds: float = typer.Option(5.0, help="Length of the append→visible run."),
) -> None:
    """Ours vs LangGraph, DBOS and eventsourcing on the same PostgreSQL: medians, ratio."""
    sizes = {k: v for k, v in locals().items() if k != "as_json"}  # CompareOptions' fields
    with _bench_modules():
        from orchestrator.bench import CompareOptions, PeersMissing, run_compare
        from orchestrator.bench import render_compare as render

    logging.getLogger("dbos").setLevel(logging.WARNING)
    options = CompareOptions(**sizes)
    try:
        rows = asyncio.run(run_compare(options))
    except PeersMissing as exc:
        raise typer.BadParameter(str(exc)) from exc
    if as_json:
        emit_json(rows)
    else:
        console = Console()
        console.width = max(console.width, 150)  # the table's names stay whole in a pipe
        console.print(render(rows, rounds))
