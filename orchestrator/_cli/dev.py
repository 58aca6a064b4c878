"""``orchestrator-state dev``: the whole stack in one process, data in one folder.

Kafka is the one ``KAFKA_BOOTSTRAP_SERVERS`` names, else Apache Kafka from its jars
when Java is present, else the bundled Tansu broker (with a warning: in memory only);
PostgreSQL is ``DATABASE_URL`` or an embedded server; snapshots and claim-checked
blobs go to the local filesystem (or, when the configuration puts them in S3, to
``S3_ENDPOINT_URL`` or a local S3 server, with the buckets created). In the same
process: the projection processor, the snapshotter, the recovery supervisor (with the
node heartbeat) and the query API.

Everything lives under ``--data-dir`` (default ``./.orchestrator-state``: ``kafka/``,
``postgres/``, ``snapshots/``, ``blobs/``), so a restart finds its state again as long
as the broker keeps its data (Apache Kafka does; Tansu does not). Ctrl-C or SIGTERM
stops everything cleanly; an unexpected failure of a component is logged once and
exits 1.
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from orchestrator._cli import _options as opts
from orchestrator._cli._buckets import make_buckets
from orchestrator._cli._metrics import checked_address, metrics_option
from orchestrator._cli._run_app import run_until_stopped, stop_signals
from orchestrator._cli.health import HEALTH_FILE
from orchestrator.app import App, AppOptions, plan_app
from orchestrator.config import RedisBackend, Settings, load_config_file
from orchestrator.devstack import (
    DEVSTACK_KAFKA,
    DevStack,
    KafkaChoice,
)

log = logging.getLogger(__name__)


def dev(
    data_dir: Path = typer.Option(
        Path(".orchestrator-state"), "--data-dir", help="Where all data lives (kept)."
    ),
    config: Path | None = opts.config_file("YAML with the seed's blocks."),
    api_port: int = typer.Option(8080, "--api-port", min=0, max=65535, help="0: any free port."),
    api_host: str = typer.Option("127.0.0.1", "--api-host"),
    kafka: str = typer.Option(
        "auto", "--kafka", envvar=DEVSTACK_KAFKA, help="auto | apache | tansu (when started here)."
    ),
    node_id: str = typer.Option("dev", "--node-id", help="This node's id in leases and events."),
    health_file: Path | None = HEALTH_FILE,
    metrics_address: str = metrics_option("dev"),
) -> None:
    """Run Kafka, PostgreSQL, processors, snapshotter, supervisor and the API in one process."""
    err = Console(stderr=True)
    if kafka not in ("auto", "apache", "tansu"):
        raise typer.BadParameter("auto, apache or tansu", param_hint="--kafka")
    settings = load_config_file(config).settings if config else Settings()  # errors: cli.main
    data_dir = data_dir.expanduser().resolve()
    err.print(f"data directory: [bold]{data_dir}[/]", highlight=False)
    choice: KafkaChoice = kafka  # type: ignore[assignment]
    at = metrics_address
    code = asyncio.run(
        _dev(settings, data_dir, api_host, api_port, choice, node_id, err, health_file, at)
    )
    raise typer.Exit(code)


async def _dev(
    settings: Settings,
    data_dir: Path,
    api_host: str,
    api_port: int,
    kafka: KafkaChoice,
    node_id: str,
    err: Console,
    health_file: Path | None = None,
    metrics_address: str | None = None,
) -> int:
    with stop_signals() as stopping:
        stack = DevStack(data_dir, s3=_needs_s3(settings), kafka_impl=kafka, **_redis(settings))
        try:
            endpoints = await stack.start()
            err.print(stack.summary(), highlight=False)
            plan = plan_app(
                settings,
                bootstrap=endpoints.kafka_bootstrap,
                dsn=endpoints.database_url,
                node_id=node_id,
                s3_endpoint=endpoints.s3_endpoint_url,
                supports_idempotence=endpoints.kafka_supports_idempotence,
                data_dir=data_dir,
                max_replication=1 if stack.kafka is not None else None,
                environ=endpoints.as_env() if stack.kafka is not None else os.environ,
            )
            if endpoints.s3_endpoint_url is not None:
                await asyncio.to_thread(make_buckets, endpoints.s3.client(), plan)
            for note in plan.notes:
                err.print(f"[yellow]note:[/] {note}", highlight=False)
            metrics_at = None if metrics_address is None else checked_address(metrics_address)
            options = AppOptions(api_host=api_host, api_port=api_port, metrics_address=metrics_at)
            async with App(plan, settings, options, endpoints=endpoints) as app:
                _summary(err, app)
                code = await run_until_stopped(
                    app, stopping, what="dev stack", health_file=health_file
                )
                if code == 0:
                    err.print("stopping…")
            return code
        finally:
            await stack.stop()


def _needs_s3(settings: Settings) -> bool:
    """The configuration puts snapshots or blobs in S3 (the s3 backend, or s3:// storage)."""
    sm = settings.state_management
    explicit = "storage" in sm.snapshots.model_fields_set
    return sm.backend == "s3" or (explicit and sm.snapshots.storage.startswith("s3://"))


def _redis(settings: Settings) -> dict[str, Any]:
    """A Redis (or a 3-node cluster with ``cluster_mode``) for ``backend: "redis"`` when the
    file names no server, run with the file's ``persistence`` (appendonly, save)."""
    backend = settings.backend()
    if not isinstance(backend, RedisBackend) or "url" in backend.model_fields_set:
        return {}
    return {
        "redis": not backend.cluster_mode,
        "redis_cluster": backend.cluster_mode,
        "redis_appendonly": backend.persistence.aof_enabled,
        "redis_snapshot_interval": backend.persistence.snapshot_interval or None,
    }


def _summary(err: Console, app: App) -> None:
    plan = app.plan
    lines = [
        f"topics: {plan.topics.pipeline.name} ({plan.topics.pipeline.partitions} partitions), "
        f"{plan.topics.shared.name}",
        f"read models: {plan.projection.tables.pipeline_states} … "
        f"(projection {plan.projection.name})",
        f"snapshots: {plan.snapshots.store_url if plan.snapshots.enabled else 'off'}",
        f"recovery: supervisor on node {plan.node_id} "
        f"(crash timeout {plan.policies.recovery.crash_timeout:g}s, "
        f"failover {plan.policies.recovery.failover_timeout:g}s)",
        f"query API: {app.api_url} (docs at {app.api_url}/docs)",
        f"metrics: {app.metrics.url if app.metrics else f'{app.api_url}/metrics'}",
        f"workers: export KAFKA_BOOTSTRAP_SERVERS={plan.bootstrap} DATABASE_URL={plan.dsn}",
        "ready; Ctrl-C to stop",
    ]
    for line in lines:
        err.print(line, highlight=False, markup=False)
