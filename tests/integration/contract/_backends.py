"""The backends the contract suite runs, one factory each: ``BACKENDS``.

Adding a backend is one entry: a name, an async context manager (the factory) and
the session fixtures it needs::

    BACKENDS["redis"] = Entry(redis_backend, needs=("kafka", "postgres", "redis"))

The suite resolves ``needs`` (so running only the memory entry, ``-k memory``, starts
no server) and calls ``factory(fixtures, tmp_path)``, where ``fixtures`` maps each
needed name to its value; the factory yields a :class:`Backend`: what the contract
needs to open connections on *one* store (``open()`` may be called again after a
connection closed, as a restarted process would). Each factory writes a configuration
file with the seed's blocks and hands it to ``orchestrator.connect``, as a user would.

``Backend.snapshots`` says whether the backend writes snapshots to a store (the
snapshot tests skip the others, naming why).
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _databases import fresh_database

import orchestrator

# A failing task is retried once at once, topics are tiny: the suite stays fast on every
# backend. Execution leases keep a ttl that a loaded machine renews in time (10 s); the
# fencing test makes its own short-lived zombie.
COMMON = """\
recovery:
  strategies:
    task_failure: {max_attempts: 2, base_delay: 0}
    pipeline_crash: {timeout: 20}
    node_failure: {failover_timeout: 20}
"""


@dataclass
class Backend:
    """One store under test: ``open()`` gives a new ``orchestrator.connect`` on it."""

    name: str
    config: Path
    environ: Mapping[str, str] = field(default_factory=dict)
    snapshots: bool = False
    """Whether a snapshotter writes snapshots to a store (filesystem, S3)."""

    def open(self, **options: Any) -> orchestrator.Connection:
        options.setdefault("supervise", False)  # the suite resumes explicitly
        options.setdefault("run_snapshotter", self.snapshots)
        return orchestrator.connect(config=self.config, environ=self.environ, **options)


Fixtures = Mapping[str, Any]
Factory = Callable[[Fixtures, Path], contextlib.AbstractAsyncContextManager[Backend]]


@dataclass(frozen=True)
class Entry:
    """A backend of the suite: its factory and the session fixtures it needs."""

    factory: Factory
    needs: tuple[str, ...] = ()


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "orchestrator.yaml"
    path.write_text(COMMON + text)
    return path


def _topics(prefix: str) -> str:
    return (
        "  event_store:\n"
        "    partitions: 2\n"
        f"    topics:\n      pipeline_events: {prefix}.pipeline\n"
        f"      shared_events: {prefix}.shared\n"
    )


@contextlib.asynccontextmanager
async def memory_backend(fixtures: Fixtures, tmp_path: Path) -> AsyncIterator[Backend]:
    """No servers: the log, read models and leases in the process, dumped to a file
    on close so that a new connection (a restarted process) reloads them."""
    config = _write(
        tmp_path,
        "state_management:\n"
        '  backend: "memory"\n'
        "  config:\n"
        '    max_size: "256MB"\n'
        '    eviction_policy: "lru"\n'
        f"    persistence: {{enabled: true, interval: 60, path: {tmp_path / 'state.log'}}}\n"
        + _topics("memory"),
    )
    yield Backend("memory", config)


@contextlib.asynccontextmanager
async def _kafka_postgres(fixtures: Fixtures) -> AsyncIterator[dict[str, str]]:
    """The environment of a fresh, empty database (dropped after) and the broker."""
    kafka = fixtures["kafka"]
    async with fresh_database(fixtures["postgres"], "contract", migrated=False) as dsn:
        yield {
            "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
            "KAFKA_SUPPORTS_IDEMPOTENCE": "true" if kafka.supports_idempotence else "false",
            "DATABASE_URL": dsn,
        }


def _prefix() -> str:
    return f"contract-{uuid.uuid4().hex[:10]}"


@contextlib.asynccontextmanager
async def postgresql_backend(fixtures: Fixtures, tmp_path: Path) -> AsyncIterator[Backend]:
    """The default: events in Kafka, read models and leases in PostgreSQL, snapshots
    in a folder given as ``snapshots.storage``."""
    config = _write(
        tmp_path,
        'state_management:\n  backend: "postgresql"\n'
        + _topics(_prefix())
        + f"  snapshots:\n    storage: file://{tmp_path / 'snapshots'}\n",
    )
    async with _kafka_postgres(fixtures) as env:
        yield Backend("postgresql", config, env, snapshots=True)


@contextlib.asynccontextmanager
async def filesystem_backend(fixtures: Fixtures, tmp_path: Path) -> AsyncIterator[Backend]:
    """Kafka + PostgreSQL, snapshots and blobs under a local folder."""
    config = _write(
        tmp_path,
        'state_management:\n  backend: "filesystem"\n'
        f"  config:\n    base_path: {tmp_path / 'state'}\n" + _topics(_prefix()),
    )
    async with _kafka_postgres(fixtures) as env:
        yield Backend("filesystem", config, env, snapshots=True)


@contextlib.asynccontextmanager
async def s3_backend(fixtures: Fixtures, tmp_path: Path) -> AsyncIterator[Backend]:
    """Kafka + PostgreSQL, snapshots and blobs in an S3 bucket (SeaweedFS)."""
    s3 = fixtures["s3"]
    prefix = _prefix()
    config = _write(
        tmp_path,
        'state_management:\n  backend: "s3"\n'
        f"  config:\n    bucket: {s3.bucket}\n    prefix: {prefix}/\n" + _topics(prefix),
    )
    async with _kafka_postgres(fixtures) as env:
        env |= {
            "S3_ENDPOINT_URL": s3.endpoint_url,
            "AWS_ACCESS_KEY_ID": s3.access_key or "any",
            "AWS_SECRET_ACCESS_KEY": s3.secret_key or "any",
            "AWS_DEFAULT_REGION": s3.region,
        }
        yield Backend("s3", config, env, snapshots=True)


@contextlib.asynccontextmanager
async def redis_backend(fixtures: Fixtures, tmp_path: Path) -> AsyncIterator[Backend]:
    """Kafka + PostgreSQL (leases, archive), execution and task state served from a
    Redis read model (its own exactly-once processor), snapshots in a folder."""
    prefix = _prefix()
    config = _write(
        tmp_path,
        'state_management:\n  backend: "redis"\n'
        f'  config:\n    url: "{fixtures["redis"]}"\n    key_prefix: "{prefix}:"\n'
        + _topics(prefix)
        + f"  snapshots:\n    storage: file://{tmp_path / 'snapshots'}\n",
    )
    async with _kafka_postgres(fixtures) as env:
        yield Backend("redis", config, env, snapshots=True)


BACKENDS: dict[str, Entry] = {
    "memory": Entry(memory_backend),
    "postgresql": Entry(postgresql_backend, needs=("kafka", "postgres")),
    "filesystem": Entry(filesystem_backend, needs=("kafka", "postgres")),
    "s3": Entry(s3_backend, needs=("kafka", "postgres", "s3")),
    "redis": Entry(redis_backend, needs=("kafka", "postgres", "redis")),
}
"""Every backend the contract suite runs: name -> factory (see the module docstring)."""
