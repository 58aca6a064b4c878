"""The one place the LangGraph adapters connect to the servers (swap for
``orchestrator.connect`` once it exists): an :class:`~orchestrator.app.App` that runs
only the state runtime (pool, topics ensured, migrations applied, event log, blob
store) and, unless told otherwise, the projection processor the reads wait on.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.app import App, AppOptions, plan_app, s3_client
from orchestrator.commands import node_label
from orchestrator.config import Settings, load_config_file
from orchestrator.devstack import ServiceEndpoints


@dataclass(frozen=True, slots=True, kw_only=True)
class Connection:
    """Where to connect and what this process runs."""

    settings: Settings
    endpoints: ServiceEndpoints
    node_id: str
    data_dir: Path
    run_projector: bool = True
    projection_name: str = "read_models"
    environ: Mapping[str, str] = field(default_factory=dict)
    """The variables read (``KAFKA_SASL_*`` and the like are merged by ``plan_app``)."""


def connection(
    config_path: str | os.PathLike[str] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    node_id: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    run_projector: bool = True,
    projection_name: str = "read_models",
) -> Connection:
    """Settings from ``config_path`` (else defaults) and servers from the environment
    (KAFKA_BOOTSTRAP_SERVERS, DATABASE_URL, S3_ENDPOINT_URL, ...); with S3 the blobs
    go to its bucket, otherwise under ``data_dir``."""
    env = os.environ if environ is None else environ
    if config_path is not None:
        settings = load_config_file(Path(config_path), env).settings
    else:
        settings = Settings()
    endpoints = ServiceEndpoints.from_env(env)
    if endpoints.s3_endpoint_url and settings.state_management.backend is None:
        settings = settings.model_copy(
            update={
                "state_management": settings.state_management.model_copy(
                    update={
                        "backend": "s3",
                        "config": {
                            "bucket": endpoints.s3_bucket,
                            "endpoint_url": endpoints.s3_endpoint_url,
                        },
                    }
                )
            }
        )
    base = Path(data_dir) if data_dir else Path.home() / ".orchestrator-state" / "langgraph"
    return Connection(
        settings=settings,
        endpoints=endpoints,
        node_id=node_id or node_label(),
        data_dir=base,
        run_projector=run_projector,
        projection_name=projection_name,
        environ=dict(env),
    )


def open_app(conn: Connection) -> App:
    """An unstarted :class:`App` for ``conn`` (``await app.start()`` connects)."""
    ep = conn.endpoints
    plan = plan_app(
        conn.settings,
        bootstrap=ep.kafka_bootstrap,
        dsn=ep.database_url,
        node_id=conn.node_id,
        s3_endpoint=ep.s3_endpoint_url,
        supports_idempotence=ep.kafka_supports_idempotence,
        data_dir=conn.data_dir,
        projection_name=conn.projection_name,
        environ=conn.environ,
    )
    options = AppOptions(
        run_projector=conn.run_projector,
        run_snapshotter=False,
        join_recovery=False,
        supervise=False,
        prune_every=0,
        discover_pipelines=False,
        configure_process=False,
    )
    return App(plan, conn.settings, options, endpoints=ep)


async def ensure_bucket(app: App) -> None:
    """Create the blob bucket when the blobs go to S3 and it does not exist yet."""
    blobs = app.plan.blobs
    if blobs is None or blobs.bucket is None:
        return
    client: Any = s3_client(app.plan, app.endpoints, blobs.endpoint_url)

    def make() -> None:
        try:
            client.head_bucket(Bucket=blobs.bucket)
        except Exception:
            client.create_bucket(Bucket=blobs.bucket)

    await asyncio.to_thread(make)
