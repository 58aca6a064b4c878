"""``orchestrator-state redis ...``: the Redis read model (``backend: "redis"``).

``redis project`` runs its processor (consumer group ``<projection>-redis``) until
SIGTERM / Ctrl-C; ``redis show EXECUTION_ID`` prints an execution as Redis serves it.
Redis settings come from ``--config FILE`` (the seed's ``backend: "redis"`` block);
the URL from ``--redis-url``, else the file, else ``REDIS_URL`` / ``REDIS_CLUSTER_URL``.
Kafka and PostgreSQL (where an expired execution is reloaded from) as for ``project``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
from dataclasses import replace
from pathlib import Path

import typer
from rich.console import Console

from orchestrator._cli import _options as opts
from orchestrator._cli.topics import configured_security
from orchestrator.app import redis_store, redis_url
from orchestrator.config import RedisBackend, load_config, load_config_file, redact_text
from orchestrator.devstack import ServiceEndpoints
from orchestrator.events import ServerUnreachable
from orchestrator.projections import (
    ProjectionSettings,
    RedisProjector,
    close_pool,
    is_redis_outage,
    open_pool,
    postgres_fallback,
    redis_client,
    run_redis_processor,
)

app = typer.Typer(help="The Redis read model (backend: redis).", no_args_is_help=True)

_CONFIG = opts.config_file("YAML with the seed's state_management block.")
_URL = typer.Option(
    None, "--redis-url", show_default=False, help="Redis URL (else the config, REDIS_URL)."
)
_NAME = typer.Option("read_models", "--projection", help="Projection whose model it is.")


def _backend(config: Path | None, url: str | None) -> tuple[RedisBackend, str | None]:
    """The redis block of ``config`` (defaults without one), and its pipeline topic."""
    loaded = load_config_file(config).settings if config else load_config("{}", "<env>").settings
    backend = loaded.backend()
    topic = loaded.state_management.event_store.topics.pipeline_events
    if not isinstance(backend, RedisBackend):
        backend = RedisBackend()
    if url:
        backend = backend.model_copy(update={"url": url})
    return backend, topic


@app.command("project")
def project(
    config: Path | None = _CONFIG,
    url: str | None = _URL,
    database_url: str | None = opts.database_url(
        "PostgreSQL read model, where an expired execution is reloaded from."
    ),
    bootstrap_servers: str = typer.Option(
        ..., "--bootstrap-servers", envvar="KAFKA_BOOTSTRAP_SERVERS", show_default=False
    ),
    name: str = _NAME,
    pipeline_topic: str | None = typer.Option(None, "--pipeline-topic"),
    batch_size: int = typer.Option(2000, "--batch-size", min=1),
    session_timeout_ms: int = typer.Option(10_000, "--session-timeout-ms", min=1000),
) -> None:
    """Run the Redis read model's processor until SIGTERM / Ctrl-C."""
    backend, topic = _backend(config, url)
    settings = ProjectionSettings(
        name=name,
        pipeline_topic=pipeline_topic or topic or ProjectionSettings().pipeline_topic,
        batch_size=batch_size,
        session_timeout_ms=session_timeout_ms,
    )
    security = configured_security(config)
    logging.getLogger("projections").setLevel(logging.INFO)

    async def run() -> None:
        target = redis_url(backend, ServiceEndpoints.from_env(os.environ))
        client = redis_client(target, cluster_mode=backend.cluster_mode)
        pool = await open_pool(database_url, max_size=2) if database_url else None
        try:
            fallback = None if pool is None else postgres_fallback(pool, settings)
            projector = RedisProjector(
                replace(settings),
                redis_store(client, backend, settings),
                bootstrap_servers,
                security=security,
                fallback=fallback,
            )
            await run_redis_processor(projector)
        finally:
            await client.aclose()
            if pool is not None:
                await close_pool(pool)

    try:
        asyncio.run(run())
    except Exception:  # run_redis_processor logged it once, with its context
        raise typer.Exit(1) from None


@app.command("show")
def show(
    execution_id: str,
    config: Path | None = _CONFIG,
    url: str | None = _URL,
    name: str = _NAME,
) -> None:
    """Print an execution's state as the Redis read model serves it (JSON)."""
    backend, _ = _backend(config, url)
    settings = ProjectionSettings(name=name)

    async def fetch() -> dict[str, object] | None:
        target = redis_url(backend, ServiceEndpoints.from_env(os.environ))
        client = redis_client(target, cluster_mode=backend.cluster_mode)
        try:
            found = await redis_store(client, backend, settings).load(execution_id)
        except Exception as exc:
            if not is_redis_outage(exc):
                raise
            reason = redact_text(str(exc)) or "no answer"
            raise ServerUnreachable("Redis", redact_text(target), reason) from exc
        finally:
            await client.aclose()
        if found is None:
            return None
        state = dataclasses.asdict(found.entry.state)
        return {"applied_offset": found.applied, "state": state}

    result = asyncio.run(fetch())
    if result is None:
        Console(stderr=True).print(f"[bold red]error:[/] no execution {execution_id!r} in Redis")
        raise typer.Exit(1)
    Console(soft_wrap=True).print(json.dumps(result, default=str, indent=2), markup=False)
