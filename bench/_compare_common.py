"""What both sides of ``bench compare`` share: payloads, fresh databases, figures."""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from pathlib import Path
from typing import Any

import asyncpg

PEER_PACKAGES = ("langgraph.checkpoint.postgres", "dbos", "eventsourcing.postgres")
"""What the ``compare`` extra installs (``pip install 'orchestrator-state[compare]'``)."""

_WORDS = (
    "the model said that we should look at the report again before the meeting and "
    "compare the numbers with last quarter because the customer asked about latency "
    "tokens retries budget summary context question answer tool call result user"
).split()


def _payload(rng: random.Random, size: int, step: int) -> dict[str, Any]:
    """A checkpoint's data: random text (zstd only halves it)."""
    return {"result": rng.randbytes(size // 2).hex(), "step": step, "progress": 0.5}


def payloads(count: int, size: int, seed: int) -> list[dict[str, Any]]:
    """``count`` checkpoints' data of one writer, each different (every side and
    ``bench checkpoint`` saves these, built before its clock starts)."""
    rng = random.Random(seed)
    return [_payload(rng, size, i) for i in range(count)]


def chat_message(rng: random.Random, i: int, size: int = 1000) -> dict[str, str]:
    """One ~1 KB chat message of ordinary words (compressible as real chat is)."""
    words: list[str] = []
    while sum(len(w) + 1 for w in words) < size:
        words.append(rng.choice(_WORDS))
    return {"role": "user" if i % 2 == 0 else "assistant", "content": " ".join(words)}


def median_ms(seconds: list[float]) -> tuple[float, float]:
    """(p50, p99) in ms of durations in seconds."""
    ordered = sorted(seconds)
    p99 = ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]
    return statistics.median(ordered) * 1000, p99 * 1000


def figures(latencies_ms: list[float], elapsed: float) -> dict[str, float]:
    """Throughput and p50/p99 of latencies already in ms."""
    p50, p99 = median_ms([x / 1000 for x in latencies_ms])
    return {"per_s": len(latencies_ms) / elapsed, "p50_ms": p50, "p99_ms": p99}


TABLE_PREFIX = "pg:"
"""Storage figures ``pg:<table>``: one table's bytes (heap, TOAST, indexes)."""


async def public_bytes(dsn: str) -> dict[str, int]:
    """Bytes on disk of every table of the database (heap, TOAST, indexes), catalogs
    aside: ``postgres_bytes`` (the sum) and ``pg:<table>`` for each table."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CHECKPOINT")
        rows = await conn.fetch(
            "SELECT c.relname AS name, pg_total_relation_size(c.oid) AS size FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind IN ('r', 'p', 'm')"
            " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
            " AND n.nspname NOT LIKE 'pg_toast%'"
        )
    finally:
        await conn.close()
    tables = {f"{TABLE_PREFIX}{r['name']}": int(r["size"]) for r in rows}
    return {"postgres_bytes": sum(tables.values()), **tables}


def dir_bytes(path: Path, prefix: str = "") -> int:
    """Bytes on disk (allocated blocks: Kafka preallocates sparse index files) of the files
    under ``path``, only entries whose name starts with ``prefix``."""
    if not path.exists():
        return 0
    return sum(
        f.stat().st_blocks * 512
        for top in path.iterdir()
        if top.name.startswith(prefix)
        for f in ([top] if top.is_file() else top.rglob("*"))
        if f.is_file()
    )


def saver_checkpoint(value: Any, step: int) -> Any:
    """A LangGraph checkpoint as a graph's loop writes it (``create_checkpoint`` from the
    previous step's channels), its ``data`` channel holding ``value``: what both
    ``AsyncKafkaSaver.aput`` and ``AsyncPostgresSaver.aput`` are given."""
    from langgraph.checkpoint.base import create_checkpoint, empty_checkpoint

    base = empty_checkpoint()
    base["channel_values"] = {"data": value, "step": step, "branch:to:node": None}
    base["channel_versions"] = {"data": step + 1, "step": step + 1, "branch:to:node": step + 1}
    base["versions_seen"] = {"node": {"data": step, "step": step}}
    return create_checkpoint(base, None, step)


async def saver_puts(saver: Any, thread: str, values: list[Any], first: int = 0) -> list[float]:
    """Latencies (ms) of one LangGraph thread's sequential ``aput``, one per value."""
    config: Any = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    latencies = []
    for i, value in enumerate(values, start=first):
        cp = saver_checkpoint(value, i)
        metadata: Any = {"source": "loop", "step": i, "parents": {}}
        t0 = time.perf_counter()
        config = await saver.aput(config, cp, metadata, dict(cp["channel_versions"]))
        latencies.append((time.perf_counter() - t0) * 1000)
    return latencies


async def saver_figures(
    saver: Any, *, saves: int, threads: int, per_thread: int, size: int
) -> dict[str, float]:
    """``aput`` of ``size``-byte values: one thread sequential (c1), then ``threads``
    threads at once (c100); throughput and p50/p99 of each."""
    await saver_puts(saver, "warm", payloads(20, size, 0))
    values = payloads(saves, size, 1)
    await saver_puts(saver, "one", values[:1])  # ours creates the execution on a first put
    t0 = time.perf_counter()
    single = await saver_puts(saver, "one", values, first=1)
    single_s = time.perf_counter() - t0
    batches = [payloads(per_thread, size, 100 + w) for w in range(threads)]
    for w in range(threads):  # each thread's first checkpoint, untimed
        await saver_puts(saver, f"t{w}", batches[w][:1])
    t0 = time.perf_counter()
    runs = await asyncio.gather(
        *(saver_puts(saver, f"t{w}", b, first=1) for w, b in enumerate(batches))
    )
    many_s = time.perf_counter() - t0
    c1 = figures(single, single_s)
    c100 = figures([x for r in runs for x in r], many_s)
    return {**{f"c1_{k}": v for k, v in c1.items()}, **{f"c100_{k}": v for k, v in c100.items()}}
