"""What the history commands share: their connection options, resolved once into a
``Conn``; a ``StateDebugger`` opened on it; printing streamed results.

PostgreSQL and Kafka come from ``--database-url`` / ``--bootstrap-servers`` or
``DATABASE_URL`` / ``KAFKA_BOOTSTRAP_SERVERS``; table names and topics from
``--config FILE`` (the seed's ``state_management`` block) or the defaults.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console, RenderableType

from orchestrator._cli import _options as opts
from orchestrator._cli._connect import kafka_reachable, pg_pool
from orchestrator._cli._folded import folded, option
from orchestrator._cli.topics import configured_security
from orchestrator.app import plan_postgres
from orchestrator.config import S3Backend, load_config_file
from orchestrator.debug import Source, StateDebugger
from orchestrator.events import PLAINTEXT, KafkaSecurity
from orchestrator.projections import ProjectionSettings, close_pool
from orchestrator.snapshots import open_store

T = TypeVar("T")
Item = TypeVar("Item")

DB = opts.database_url("PostgreSQL DSN of the read models and the event archive.")
KAFKA = opts.bootstrap_servers("Kafka bootstrap servers (--source log, lag, fork).")
CONFIG = opts.config_file("YAML with the seed's state_management block.")
PROJECTION = typer.Option("read_models", "--projection", help="Projection whose tables to read.")
SOURCE = typer.Option("archive", "--source", help="archive (execution_events) or log (Kafka).")
JSON_LINES = typer.Option(False, "--json", help="JSON for machines (JSON lines when streaming).")
STORE = typer.Option(None, "--store", help="Snapshot store URL (default: the one the index names).")
S3 = opts.s3_endpoint_url("Endpoint of an S3-compatible snapshot store.")
NO_SNAPSHOTS = typer.Option(False, "--no-snapshots", help="Fold from the first event.")
TOPIC = opts.PIPELINE_TOPIC


@dataclass(frozen=True)
class Conn:
    """What every command needs, resolved from options, config and environment."""

    dsn: str
    bootstrap: str | None
    projection: ProjectionSettings
    store: str | None
    s3_endpoint_url: str | None
    snapshots: bool
    security: KafkaSecurity = PLAINTEXT
    s3_region: str | None = None
    """The s3 backend's ``region`` from ``--config`` (else boto3's: AWS_DEFAULT_REGION)."""


@dataclass(frozen=True)
class Where:
    """The connection flags every history command takes (see ``with_where``)."""

    database_url: str | None
    bootstrap_servers: str | None
    projection: str
    config: Path | None
    pipeline_topic: str | None


with_where = folded(
    "where",
    Where,
    option("database_url", str | None, DB),
    option("bootstrap_servers", str | None, KAFKA),
    option("projection", str, PROJECTION),
    option("config", Path | None, CONFIG),
    option("pipeline_topic", str | None, TOPIC),
)
"""Decorator: a command's ``where: Where`` parameter becomes those five flags."""


def resolve(
    where: Where,
    *,
    source: Source = "archive",
    store: str | None = None,
    s3_endpoint_url: str | None = None,
    no_snapshots: bool = False,
) -> Conn:
    """The connection a command's flags name (``where``, and where it has them
    ``--store``, ``--s3-endpoint-url``, ``--no-snapshots``).

    With ``source`` log, Kafka is required.
    """
    database_url, bootstrap_servers = where.database_url, where.bootstrap_servers
    config, pipeline_topic = where.config, where.pipeline_topic
    settings = ProjectionSettings(name=where.projection)
    dsn, region = database_url, None
    if config is not None:
        loaded = load_config_file(config).settings
        topics = loaded.state_management.event_store.topics
        settings = replace(
            settings, pipeline_topic=topics.pipeline_events, shared_topic=topics.shared_events
        )
        backend = loaded.backend()
        if isinstance(backend, S3Backend) and "region" in backend.model_fields_set:
            region = backend.region
        pg = plan_postgres(loaded)
        settings = replace(settings, tables=pg.tables)
        dsn = dsn or pg.dsn
    if pipeline_topic:
        settings = replace(settings, pipeline_topic=pipeline_topic)
    if not dsn:
        Console(stderr=True).print("[bold red]error:[/] pass --database-url or set DATABASE_URL")
        raise typer.Exit(2)
    security = configured_security(config) if bootstrap_servers else PLAINTEXT
    conn = Conn(
        dsn,
        bootstrap_servers,
        settings,
        store,
        s3_endpoint_url,
        not no_snapshots,
        security,
        region,
    )
    if source == "log":
        need_kafka(conn, "--source log")
    return conn


def need_kafka(conn: Conn, why: str) -> str:
    if not conn.bootstrap:
        Console(stderr=True).print(
            f"[bold red]error:[/] {why} needs Kafka: pass --bootstrap-servers or set "
            "KAFKA_BOOTSTRAP_SERVERS"
        )
        raise typer.Exit(2)
    return kafka_reachable(conn.bootstrap, conn.security)


@contextlib.asynccontextmanager
async def open_debugger(conn: Conn) -> AsyncIterator[StateDebugger]:
    pool = await pg_pool(conn.dsn, max_size=4)
    try:
        yield StateDebugger(
            pool=pool,
            projection=conn.projection,
            bootstrap_servers=conn.bootstrap,
            use_snapshots=conn.snapshots,
            snapshot_store=open_store(
                conn.store, endpoint_url=conn.s3_endpoint_url, region=conn.s3_region
            )
            if conn.store
            else None,
            s3_endpoint_url=conn.s3_endpoint_url,
            kafka_security=conn.security,
        )
    finally:
        await close_pool(pool)


def ask(conn: Conn, question: Callable[[StateDebugger], Awaitable[T]]) -> T:
    """The debugger's answer to ``question``, with a debugger opened for it alone."""

    async def go() -> T:
        async with open_debugger(conn) as debugger:
            return await question(debugger)

    return run(go)


async def print_each(
    items: AsyncGenerator[Item, None],
    as_json: Callable[[Item], Any],
    view: Callable[[Item], RenderableType],
    json_lines: bool,
) -> int:
    """Print each item as it comes (a JSON line, or its rich view); return how many."""
    count, out = 0, Console()
    async with contextlib.aclosing(items) as each:
        async for item in each:
            count += 1
            if json_lines:
                emit_json(as_json(item))
            else:
                out.print(view(item))
    return count


def run(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a command; failures are rendered once, by ``orchestrator._cli.root.main``."""
    return asyncio.run(work())


def emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()
