"""What ``orchestrator-state snapshots ...`` resolves from the seed's configuration
(``--config``, flags override): the store, key layout, policies, codec, lifecycle and
tables, one resolution shared by every subcommand."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from orchestrator.app.plan import snapshot_encoding
from orchestrator.config import (
    FilesystemBackend,
    PostgresBackend,
    S3Backend,
    Settings,
    load_config,
    load_config_file,
)
from orchestrator.projections.migrate import TableNames
from orchestrator.snapshots import (
    KeyLayout,
    KeyRing,
    Lifecycle,
    RetentionPolicy,
    SnapshotPolicy,
    SnapshotStore,
    codec_from_settings,
    open_store,
)
from orchestrator.snapshots.codec import SnapshotCodec


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
    """The snapshot settings of ``config`` (``store`` overrides the storage URL)."""
    s = load_settings(config)
    sm, cp, comp = s.state_management, s.checkpointing, s.compression
    backend = s.backend()
    layout, retention_days = KeyLayout(), None
    if isinstance(backend, FilesystemBackend):
        org = backend.organization
        layout = KeyLayout(by_pipeline=org.by_pipeline, by_date=org.by_date)
        retention_days = org.retention_days
    compress, algorithm, file_format = snapshot_encoding(s)
    s3 = backend if isinstance(backend, S3Backend) else None
    tables = TableNames()
    if isinstance(backend, PostgresBackend):
        schema = backend.schema_
        tables = TableNames(schema.pipeline_states, schema.task_states, schema.checkpoints)
    return SnapshotSetup(
        store_url=store or sm.snapshots.storage,
        layout=layout,
        policy=SnapshotPolicy(
            frequency=sm.snapshots.frequency,
            interval=cp.periodic.interval,
            after_tasks=frozenset(cp.progressive.after_tasks),
            min_interval=cp.progressive.min_interval,
            on_success_tasks=frozenset(cp.on_success.tasks),
        ),
        retention=RetentionPolicy(
            max_checkpoints=cp.storage.retention.max_checkpoints,
            max_age_days=cp.storage.retention.max_age_days,
            retention_days=retention_days,
            blob_grace_hours=cp.storage.retention.blob_grace_hours,
        ),
        codec=codec_from_settings(
            compress=compress,
            level=comp.level,
            min_size=comp.selective.min_size,
            algorithm=algorithm,
            encrypt=cp.storage.encrypt,
            keys=KeyRing.from_env(),
        ),
        lifecycle=Lifecycle(s3.lifecycle.transition_to_glacier, s3.lifecycle.expiration)
        if s3
        else Lifecycle(),
        tables=tables,
        topic=sm.event_store.topics.pipeline_events,
        dsn=backend.connection_string if isinstance(backend, PostgresBackend) else None,
        s3=s3,
        file_format=file_format,
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
