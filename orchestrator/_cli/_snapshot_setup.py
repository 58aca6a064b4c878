"""What ``orchestrator-state snapshots ...`` resolves from the seed's configuration
(``--config``, flags override): the store, key layout, policies, codec, lifecycle and
tables, one resolution shared by every subcommand."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from orchestrator.app import plan_postgres, plan_snapshots
from orchestrator.config import (
    S3Backend,
    Settings,
    load_config,
    load_config_file,
)
from orchestrator.projections import TableNames
from orchestrator.snapshots import (
    KeyLayout,
    Lifecycle,
    RetentionPolicy,
    SnapshotCodec,
    SnapshotPolicy,
    SnapshotStore,
    open_store,
)


@dataclasses.dataclass(frozen=True)
class SnapshotSetup:
    """Everything the seed's configuration says about snapshots, resolved."""

    store_url: str
    layout: KeyLayout
    policy: SnapshotPolicy
    retention: RetentionPolicy
    codec: SnapshotCodec
    lifecycle: Lifecycle
    tables: TableNames
    topic: str
    dsn: str | None
    s3: S3Backend | None
    file_format: str = "raw"


def load_settings(config: Path | None) -> Settings:
    """``--config``, or the ``ORCHESTRATOR_*`` overrides alone when no file is given
    (a bad one: one line per issue, by ``cli.main``)."""
    if config is None:
        return load_config("{}", "<environment>").settings
    return load_config_file(config).settings


def snapshot_setup(config: Path | None, store: str | None) -> SnapshotSetup:
    """The snapshot settings of ``config`` (``store`` overrides the storage URL), read
    through the same plan as ``dev`` and ``connect()`` (``orchestrator.app.plan_snapshots``):
    one store URL, trigger policy, layout, retention and codec for every process."""
    s = load_settings(config)
    plan, _, _ = plan_snapshots(s)
    backend = s.backend()
    s3 = backend if isinstance(backend, S3Backend) else None
    pg = plan_postgres(s)
    tables = pg.table_names
    return SnapshotSetup(
        store_url=store or plan.store_url,
        layout=plan.layout,
        policy=plan.policy,
        retention=plan.retention,
        codec=plan.codec(),
        lifecycle=plan.lifecycle,
        tables=tables,
        topic=s.state_management.event_store.topics.pipeline_events,
        dsn=pg.dsn,
        s3=s3,
        file_format=plan.file_format,
    )


def setup_store(setup: SnapshotSetup, endpoint_url: str | None) -> SnapshotStore:
    """The store the setup names, with the S3 backend's endpoint, region and encryption."""
    s3 = setup.s3
    return open_store(
        setup.store_url,
        endpoint_url=endpoint_url or (s3.endpoint_url if s3 else None),
        region=s3.region if s3 else None,
        kms_key_id=s3.encryption.kms_key if s3 and s3.encryption.enabled else None,
        server_side_encryption="aws:kms" if s3 and s3.encryption.enabled else None,
        file_format=setup.file_format,
    )
