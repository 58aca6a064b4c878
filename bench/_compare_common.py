"""What both sides of ``bench compare`` share: payloads, fresh databases, figures."""

from __future__ import annotations

import random
import statistics
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg

PEER_PACKAGES = ("langgraph.checkpoint.postgres", "dbos", "eventsourcing.postgres")
"""What the ``compare`` extra installs (``pip install 'orchestrator-state[compare]'``)."""

_WORDS = (
    "the model said that we should look at the report again before the meeting and "
    "compare the numbers with last quarter because the customer asked about latency "
    "tokens retries budget summary context question answer tool call result user"
).split()


def payload(rng: random.Random, size: int, step: int) -> dict[str, Any]:
    """A checkpoint's data: random text (zstd only halves it), as ``bench checkpoint``."""
    return {"result": rng.randbytes(size // 2).hex(), "step": step, "progress": 0.5}


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


@asynccontextmanager
async def database(server_dsn: str, prefix: str = "cmp") -> AsyncIterator[str]:
    """A fresh, empty database on the server; dropped on exit."""
    name = f"bench_{prefix}_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server_dsn)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        yield urlunsplit(urlsplit(server_dsn)._replace(path=f"/{name}"))
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


async def public_bytes(dsn: str) -> int:
    """Bytes on disk of every table of the database (heap, TOAST, indexes), catalogs aside."""
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("CHECKPOINT")
        total = await conn.fetchval(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c"
            " JOIN pg_namespace n ON n.oid = c.relnamespace"
            " WHERE c.relkind IN ('r', 'p', 'm')"
            " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
            " AND n.nspname NOT LIKE 'pg_toast%'"
        )
    finally:
        await conn.close()
    return int(total)


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
