"""``orchestrator-state supervise``: the leader-elected recovery supervisor, alone.

The same ``App`` as ``orchestrator-state dev`` with only the recovery ring switched on:
the node heartbeat and a campaign for ``leader/recovery_supervisor``. While leading, it
finds executions that crashed or whose node failed and assigns each to a live worker
node that has the pipeline registered (this process registers none, so it never runs
user code). Run one or more per deployment: one leads, the others stand by.

Kafka, PostgreSQL and S3 come from ``KAFKA_BOOTSTRAP_SERVERS``, ``DATABASE_URL`` and
``S3_ENDPOINT_URL``; timeouts from ``--config FILE`` (the seed's ``recovery`` block) and
``ORCHESTRATOR_*`` overrides (``ORCHESTRATOR_RECOVERY__STRATEGIES__PIPELINE_CRASH__TIMEOUT``).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import uuid
from dataclasses import replace
from pathlib import Path

import typer
from rich.console import Console

from orchestrator._cli import _options as opts
from orchestrator._cli._metrics import checked_address, metrics_option
from orchestrator._cli._run_app import run_until_stopped, stop_signals
from orchestrator._cli.health import HEALTH_FILE
from orchestrator.app import App, AppOptions, AppPlan, PlanError, plan_app
from orchestrator.config import ConfigError, Settings, load_config, load_config_file
from orchestrator.devstack import ServiceEndpoints
from orchestrator.events import OrchestratorStateError

log = logging.getLogger(__name__)

ONLY_RECOVERY = AppOptions(
    run_projector=False,
    run_snapshotter=False,
    join_recovery=True,
    supervise=True,
    api_port=None,
    discover_pipelines=False,
    prune_every=0,
)


def supervise(
    config: Path | None = opts.config_file(
        "YAML with the seed's blocks (recovery, backend, topics)."
    ),
    node_id: str | None = typer.Option(
        None,
        "--node-id",
        envvar="ORCHESTRATOR_NODE_ID",
        show_default=False,
        help="This node's id in leases (default: supervisor-<hostname>-<random>).",
    ),
    health_file: Path | None = HEALTH_FILE,
    metrics_address: str = metrics_option("supervise"),
) -> None:
    """Run the recovery supervisor (leader-elected) until SIGTERM/Ctrl-C."""
    err = Console(stderr=True)
    try:
        settings = load_config_file(config).settings if config else _env_settings()
        endpoints = ServiceEndpoints.from_env(os.environ)
        plan = plan_app(
            settings,
            bootstrap=endpoints.kafka_bootstrap,
            dsn=endpoints.database_url,
            node_id=node_id or f"supervisor-{socket.gethostname()}-{uuid.uuid4().hex[:6]}",
            s3_endpoint=endpoints.s3_endpoint_url,
            supports_idempotence=endpoints.kafka_supports_idempotence,
            environ=os.environ,
        )
    except (ConfigError, PlanError) as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(2) from None
    if not plan.policies.recovery.enabled:
        err.print("[bold red]error:[/] recovery.enabled is false: nothing to supervise")
        raise typer.Exit(2)
    try:
        options = replace(ONLY_RECOVERY, metrics_address=checked_address(metrics_address))
        code = asyncio.run(_supervise(plan, settings, options, endpoints, err, health_file))
    except OrchestratorStateError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    raise typer.Exit(code)


def _env_settings() -> Settings:
    """Defaults plus the ``ORCHESTRATOR_*`` overrides, as if from an empty file."""
    return load_config("{}", "<environment>").settings


async def _supervise(
    plan: AppPlan,
    settings: Settings,
    options: AppOptions,
    endpoints: ServiceEndpoints,
    err: Console,
    health_file: Path | None,
) -> int:
    with stop_signals() as stopping:
        async with App(plan, settings, options, endpoints=endpoints) as app:
            orchestrator = app.orchestrator
            assert orchestrator is not None
            rec = plan.policies.recovery
            err.print(
                f"recovery supervisor: node {plan.node_id}, crash timeout "
                f"{rec.crash_timeout:g}s, failover {rec.failover_timeout:g}s; Ctrl-C to stop",
                highlight=False,
            )

            def healthy() -> bool:
                supervisor = orchestrator.supervisor
                return supervisor is not None and supervisor.healthy()

            return await run_until_stopped(
                app, stopping, what="supervisor", health_file=health_file, healthy=healthy
            )
