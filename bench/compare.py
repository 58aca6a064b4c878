"""``bench compare``: ours against the tools users would pick instead, side by side.

The peers (the ``compare`` extra: LangGraph's ``AsyncPostgresSaver``, DBOS,
``eventsourcing`` on PostgreSQL) and ours run against the same PostgreSQL (ours also on
Kafka), in ``rounds`` interleaved rounds (the side that goes first alternates); each row
is the median over the rounds. ``advantage`` is how many times better ours is, whatever
the unit's direction (above 1: ours wins). Workloads, the same work on both sides:

- ``checkpoint_c1_p50`` / ``checkpoint_c100_throughput``: 10 KB checkpoints saved one
  at a time, then by 100 executions at once (LangGraph ``aput`` on a pool sized like
  ours, 20);
- ``langgraph_saver_c1_p50`` / ``langgraph_saver_c100_throughput``: LangGraph's own
  checkpointer interface, ``AsyncKafkaSaver.aput`` against ``AsyncPostgresSaver.aput``:
  the same checkpoints (``create_checkpoint``, a 10 KB channel value), one thread's
  sequential puts, then 100 threads putting at once (LangGraph on a pool of 10, the
  size of ours);
- ``task_overhead``: a chain of 10 tasks returning 1 KB (DBOS ``@DBOS.step`` in a
  workflow): (wall of 10 tasks - wall of 1) / 9, ms per task;
- ``append_throughput``: ~300-byte events in batches of 1,000 (eventsourcing: one
  ``save`` per batch);
- ``restore_latest_10k`` / ``restore_latest_100k``: latest state of one long history,
  a snapshot every 100 events (eventsourcing ``repository.get``);
- ``resume_after_kill``: a two-task run SIGKILLed in its second task; seconds from
  spawning the restarted process to that task starting again (LangGraph, DBOS);
- ``storage_growth``: bytes on disk (PostgreSQL tables and indexes, our Kafka topic's
  log, snapshot and blob files) after ``--storage-steps`` checkpoints of a chat history
  growing ~1 KB per step (measured once, not per round: it does not vary);
- ours only, once: ``fold_throughput`` and ``append_visible_p99`` (``bench project``).

Before the first round both sides run the checkpoint workload once, unrecorded, with
``warmup_saves`` sequential saves (0 skips it): a Kafka broker's JVM compiles its
produce path over its first few thousand requests (a 10 KB save's p50 went 1.83, 1.47,
1.37, 1.12, 1.05, 1.08 ms over six runs of 1,000 on this machine), which a broker in
service did long ago; PostgreSQL and LangGraph get the same warm-up.

Kafka and PostgreSQL come from the usual env vars, else are started locally.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import statistics
import tempfile
from collections import defaultdict
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.table import Table

from orchestrator.bench import _compare_ours as ours
from orchestrator.bench._compare_common import PEER_PACKAGES
from orchestrator.bench._database import fresh_database
from orchestrator.devstack import ServiceEndpoints, local_services

INSTALL = "pip install 'orchestrator-state[compare]'"


class PeersMissing(RuntimeError):
    """The ``compare`` extra is not installed."""


@dataclass(frozen=True)
class CompareOptions:
    """Sizes of each workload (defaults fit ~10 minutes on a 2-core machine)."""

    rounds: int = 3
    warmup_saves: int = 5000
    checkpoint_saves: int = 1000
    checkpoint_executions: int = 100
    checkpoint_per_execution: int = 20
    payload_bytes: int = 10_240
    pool_size: int = 20
    saver_saves: int = 500
    saver_threads: int = 100
    saver_per_thread: int = 10
    saver_bytes: int = 10_240
    saver_pool_size: int = 10
    overhead_runs: int = 10
    overhead_tasks: int = 10
    append_events: int = 50_000
    append_warmup: int = 10_000
    restore_events: int = 100_000
    restore_small_events: int = 10_000
    restore_samples: int = 100
    resume: bool = True
    storage_steps: int = 1000
    fold_events: int = 50_000
    fold_rate: int = 5000
    fold_seconds: float = 5.0


def missing_peers() -> list[str]:
    """The peer packages not importable here (empty: the ``compare`` extra is installed)."""
    return [name for name in PEER_PACKAGES if _find(name) is None]


def _find(name: str) -> Any:
    try:
        return importlib.util.find_spec(name)
    except ModuleNotFoundError:
        return None


@dataclass
class _Run:
    """One process's services and the per-round figures gathered so far."""

    endpoints: ServiceEndpoints
    server_dsn: str
    work: Path
    kafka_logs: Path | None
    options: CompareOptions
    samples: dict[tuple[str, str], list[dict[str, float]]]
    dbos_dsn: str = ""
    failures: list[str] = field(default_factory=list)

    async def measure(
        self, key: tuple[str, str], work: Callable[[str], Awaitable[dict[str, float]]]
    ) -> None:
        """Run ``work`` on a fresh database and keep its figures under ``key``; a
        failure is reported in one line and leaves that sample out."""
        try:
            async with fresh_database(self.server_dsn, key[1]) as dsn:
                self.samples[key].append(await work(dsn))
        except Exception as exc:
            logging.getLogger(__name__).error("bench compare: %s/%s failed: %s", *key, exc)
            self.failures.append(f"{key[0]}/{key[1]}: {exc}")


async def _round(run: _Run, number: int) -> None:
    from orchestrator.bench import _compare_peers as peers

    o = run.options
    ep, work = run.endpoints, run.work / f"round{number}"

    # the same work on both sides: one definition of each workload's size
    checkpoints = _checkpoint_sizes(o, o.checkpoint_saves)
    savers = {
        "saves": o.saver_saves,
        "threads": o.saver_threads,
        "per_thread": o.saver_per_thread,
        "size": o.saver_bytes,
    }

    async def ours_checkpoint(_: str) -> dict[str, float]:
        return _flat(await ours.checkpoint_saves(**checkpoints))

    async def lg_checkpoint(dsn: str) -> dict[str, float]:
        return _flat(await peers.langgraph_checkpoint(dsn, **checkpoints, pool_size=o.pool_size))

    async def ours_saver(dsn: str) -> dict[str, float]:
        return await ours.kafka_saver(dsn, work / "saver", **savers)

    async def lg_saver(dsn: str) -> dict[str, float]:
        return await peers.postgres_saver(dsn, **savers, pool_size=o.saver_pool_size)

    async def ours_overhead(dsn: str) -> dict[str, float]:
        return await ours.task_overhead(
            ep, dsn, work / "overhead", runs=o.overhead_runs, tasks=o.overhead_tasks
        )

    async def dbos_overhead(_: str) -> dict[str, float]:
        # One database for the whole run. DBOS, while launched, keeps threads of its own
        # busy in this process (queues, listeners), which took the GIL from the other
        # workloads (ours at 100 concurrent saves: 2,326/s before DBOS's first launch,
        # 1,799/s after): launched for its own measurement only.
        try:
            return await peers.dbos_task_overhead(
                run.dbos_dsn, runs=o.overhead_runs, tasks=o.overhead_tasks
            )
        finally:
            _stop_dbos(peers)

    async def ours_append(_: str) -> dict[str, float]:
        assert ep.kafka_bootstrap is not None
        return await ours.append(
            ep.kafka_bootstrap, events=o.append_events, batch_size=1000, warmup=o.append_warmup
        )

    async def es_append(dsn: str) -> dict[str, float]:
        return peers.es_append(dsn, events=o.append_events, batch_size=1000)

    # A workload whose size is 0 is skipped (one row measured alone, e.g. restore).
    pairs: list[tuple[str, Callable[..., Any], str, Callable[..., Any]]] = [
        (label, mine, peer, theirs)
        for label, mine, peer, theirs, size in (
            ("checkpoint", ours_checkpoint, "langgraph", lg_checkpoint, o.checkpoint_saves),
            ("saver", ours_saver, "langgraph", lg_saver, o.saver_saves),
            ("overhead", ours_overhead, "dbos", dbos_overhead, o.overhead_runs),
            ("append", ours_append, "eventsourcing", es_append, o.append_events),
        )
        if size > 0
    ]
    for label, events in (("restore_small", o.restore_small_events), ("restore", o.restore_events)):
        if events > 0:
            pairs.append(
                (label, _ours_restore(run, events), "eventsourcing", _es_restore(o, events))
            )
    for label, mine, peer, theirs in pairs:
        sides = [("ours", mine), (peer, theirs)]
        for side, fn in sides if number % 2 == 0 else reversed(sides):
            await run.measure((label, side), fn)
    if o.resume:  # ours once a round (it waits for the lease), against both peers
        resumes = [("ours", _ours_resume(run, work))]
        resumes += [(peer, _peer_resume(peer, work)) for peer in ("langgraph", "dbos")]
        for side, fn in resumes if number % 2 == 0 else reversed(resumes):
            await run.measure(("resume", side), fn)


def _checkpoint_sizes(o: CompareOptions, saves: int) -> dict[str, int]:
    """The checkpoint workload's sizes, the same on both sides (``saves`` sequential)."""
    return {
        "saves": saves,
        "executions": o.checkpoint_executions,
        "per_execution": o.checkpoint_per_execution,
        "size": o.payload_bytes,
    }


def _stop_dbos(peers: Any) -> None:
    """Destroy DBOS if launched; it shuts the loop's default executor down: a new one."""
    peers.stop_dbos()
    asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor())


async def _warm_up(run: _Run) -> None:
    """Each side's checkpoint workload once, unrecorded (see the module docstring)."""
    from orchestrator.bench import _compare_peers as peers

    o = run.options
    if o.warmup_saves <= 0:
        return
    sizes = _checkpoint_sizes(o, o.warmup_saves)
    await ours.checkpoint_saves(**sizes)
    async with fresh_database(run.server_dsn, "warmup") as dsn:
        await peers.langgraph_checkpoint(dsn, **sizes, pool_size=o.pool_size)


def _flat(figures: dict[str, dict[str, float]]) -> dict[str, float]:
    """``{scenario: {figure: value}}`` as ``{scenario_figure: value}``."""
    return {f"{k}_{f}": v for k, figs in figures.items() for f, v in figs.items()}


def _ours_restore(run: _Run, events: int) -> Callable[[str], Awaitable[dict[str, float]]]:
    async def measure(_: str) -> dict[str, float]:
        return await ours.restore(
            run.server_dsn, events=events, samples=run.options.restore_samples
        )

    return measure


def _es_restore(o: CompareOptions, events: int) -> Callable[[str], Awaitable[dict[str, float]]]:
    async def measure(dsn: str) -> dict[str, float]:
        from orchestrator.bench import _compare_peers as peers

        return peers.es_restore(dsn, events=events, samples=o.restore_samples)

    return measure


def _ours_resume(run: _Run, work: Path) -> Callable[[str], Awaitable[dict[str, float]]]:
    async def measure(dsn: str) -> dict[str, float]:
        from orchestrator.bench._compare_peers import new_run_id

        folder = work / "resume-ours"
        folder.mkdir(parents=True, exist_ok=True)
        took = await ours.ours_resume(run.endpoints, dsn, folder, run_id=new_run_id())
        return {"seconds": took}

    return measure


def _peer_resume(peer: str, work: Path) -> Callable[[str], Awaitable[dict[str, float]]]:
    async def measure(dsn: str) -> dict[str, float]:
        from orchestrator.bench._compare_peers import new_run_id

        folder = work / f"resume-{peer}"
        folder.mkdir(parents=True, exist_ok=True)
        spec = {"side": peer, "run_id": new_run_id(), "dsn": dsn}
        return {"seconds": await ours.kill_and_resume(spec, folder)}

    return measure


async def _once(run: _Run) -> None:
    from orchestrator.bench import _compare_peers as peers

    o = run.options
    if o.storage_steps > 0:

        async def mine(dsn: str) -> dict[str, float]:
            return await ours.storage(
                run.endpoints, dsn, run.work / "storage", run.kafka_logs, steps=o.storage_steps
            )

        async def theirs(dsn: str) -> dict[str, float]:
            return await peers.langgraph_storage(dsn, steps=o.storage_steps)

        await run.measure(("storage", "ours"), mine)
        await run.measure(("storage", "langgraph"), theirs)
    if o.fold_events > 0:

        async def fold(_: str) -> dict[str, float]:
            return await ours.fold(
                events=o.fold_events, rate=o.fold_rate, seconds=o.fold_seconds, warmup=10_000
            )

        await run.measure(("fold", "ours"), fold)


async def run_compare(options: CompareOptions) -> list[dict[str, Any]]:
    """Run every workload (see the module docstring); the rows, medians over the rounds."""
    missing = missing_peers()
    if missing:
        raise PeersMissing(f"{', '.join(missing)} not installed: {INSTALL}")
    from orchestrator.bench import _compare_peers as peers
    from orchestrator.bench._compare_rows import rows

    with tempfile.TemporaryDirectory(prefix="bench-compare-") as tmp:
        services = Path(tmp) / "services"
        async with local_services(services, s3=False) as endpoints:
            assert endpoints.database_url is not None
            logs = services / "kafka" / "kraft-logs"
            saved = dict(os.environ)
            os.environ.update(endpoints.as_env())  # the reused benches read the env
            run = _Run(
                endpoints,
                endpoints.database_url,
                Path(tmp),
                logs if logs.is_dir() else None,
                options,
                defaultdict(list),
            )
            try:
                async with fresh_database(run.server_dsn, "dbos") as run.dbos_dsn:
                    await _warm_up(run)
                    try:
                        for number in range(options.rounds):
                            await _round(run, number)
                    finally:
                        _stop_dbos(peers)
                await _once(run)
            finally:
                os.environ.clear()
                os.environ.update(saved)
    return rows(run.samples, options)


def render(result: list[dict[str, Any]], rounds: int) -> Table:
    """The rows as a rich table: medians, p50/p99 where measured, and the advantage."""
    table = Table(title=f"bench compare: medians of {rounds} interleaved rounds")
    for column in ("workload", "peer", "ours", "theirs", "unit", "advantage"):
        table.add_column(column, justify="left" if column in ("workload", "peer") else "right")
    for row in result:
        adv = row["advantage"]
        table.add_row(
            row["workload"],
            row["peer"] or "-",
            _cell(row["ours"], row.get("ours_p99")),
            _cell(row["theirs"], row.get("theirs_p99")),
            row["unit"],
            "-" if adv is None else f"{adv:.2f}x {'ours' if adv >= 1 else 'peer'}",
        )
    return table


def _cell(value: float | None, p99: float | None) -> str:
    if value is None:
        return "-"
    text = f"{value:,.0f}" if value >= 100 else f"{value:.2f}"
    return text if p99 is None else f"{text} (p99 {p99:.2f})"


def median(values: list[float]) -> float:
    return statistics.median(values)
