"""The snapshotter's plan from the settings: store URL, codec, triggers, key layout,
retention, and where claim-checked blobs go. Every process reads snapshot settings
here: ``plan_app`` and the ``snapshots`` commands alike."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from orchestrator.app.errors import PlanError
from orchestrator.config import FilesystemBackend, MemoryBackend, S3Backend, Settings
from orchestrator.events import CompressionAlgorithm, KeyRing, check_level
from orchestrator.snapshots import (
    KeyLayout,
    Lifecycle,
    RetentionPolicy,
    SnapshotCodec,
    SnapshotPolicy,
    blob_prefix,
    codec_from_settings,
)

FileFormat = Literal["raw", "json", "msgpack"]
"""How a filesystem store writes each snapshot file (see ``snapshots.filesystem``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class BlobPlan:
    """Where claim-checked user data goes: a folder, or an S3 bucket and prefix."""

    root: str | None = None
    bucket: str | None = None
    prefix: str = ""
    endpoint_url: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotPlan:
    """The snapshotter: store URL, codec options, triggers, key layout, retention."""

    enabled: bool
    store_url: str
    endpoint_url: str | None = None
    sse_kms: bool = False  # S3 encryption.enabled: SSE-KMS, with kms_key or the default key
    kms_key: str | None = None
    compress: bool = True
    level: int = 3
    min_size: int = 1024
    algorithm: CompressionAlgorithm = "zstd"
    file_format: FileFormat = "raw"
    """How a filesystem store writes its files (``config.format``); others ignore it."""
    encrypt: bool = False
    policy: SnapshotPolicy = field(default_factory=SnapshotPolicy)
    layout: KeyLayout = field(default_factory=KeyLayout)
    retention: RetentionPolicy = field(default_factory=RetentionPolicy)
    lifecycle: Lifecycle = field(default_factory=Lifecycle)

    def codec(self) -> SnapshotCodec:
        """The codec these options describe, the one every process reads and writes
        snapshots with (keys from ``ORCHESTRATOR_SNAPSHOT_KEYS`` when encrypting)."""
        return codec_from_settings(
            compress=self.compress,
            level=self.level,
            min_size=self.min_size,
            algorithm=self.algorithm,
            encrypt=self.encrypt,
            keys=KeyRing.from_env() if self.encrypt else None,
        )


def snapshot_encoding(settings: Settings) -> tuple[bool, CompressionAlgorithm, FileFormat]:
    """Whether snapshots are compressed, with which algorithm, and the file format.

    The ``compression`` block decides, unless a filesystem backend sets its own
    ``compression`` (``none`` turns it off); its ``format`` wraps each file (``raw``:
    the snapshot object alone, for every other store)."""
    comp, ck = settings.compression, settings.checkpointing
    compress, algorithm = comp.enabled and ck.storage.compress, comp.algorithm
    backend = settings.backend()
    if not isinstance(backend, FilesystemBackend):
        return compress, algorithm, "raw"
    file_format: FileFormat = "msgpack" if backend.format == "msgpack" else "json"
    if "compression" in backend.model_fields_set:
        compress = backend.compression != "none" and ck.storage.compress
        if backend.compression != "none":
            algorithm = backend.compression
            problem = check_level(algorithm, comp.level)
            if problem is not None and compress:
                raise PlanError(f"compression.level: {problem} (state_management.config)")
    return compress, algorithm, file_format


def snapshot_policy(settings: Settings) -> SnapshotPolicy:
    """When the snapshotter writes, from ``state_management.snapshots.frequency`` and the
    ``checkpointing`` strategy: only the chosen strategy's triggers act (``periodic``:
    every ``interval`` s, else 300 s; ``progressive``: after its tasks; ``on_success``:
    its tasks). The one reading of the snapshot policy, for every process."""
    sm, ck = settings.state_management, settings.checkpointing
    strategy = ck.strategy
    return SnapshotPolicy(
        frequency=sm.snapshots.frequency,
        interval=ck.periodic.interval if ck.enabled and strategy == "periodic" else 300.0,
        after_tasks=frozenset(ck.progressive.after_tasks)
        if strategy == "progressive"
        else frozenset(),
        min_interval=ck.progressive.min_interval,
        on_success_tasks=frozenset(ck.on_success.tasks)
        if strategy == "on_success"
        else frozenset(),
    )


def plan_snapshots(
    settings: Settings, data_dir: Path | None = None, s3_endpoint: str | None = None
) -> tuple[SnapshotPlan, BlobPlan | None, list[str]]:
    """The snapshotter's and the blobs' plan, with notes; ``plan_app`` (``dev``,
    ``connect()``, ``supervise``) and ``snapshots ...`` (``_cli/_snapshot_setup.py``)
    both read the settings through it."""
    sm, ck, comp = settings.state_management, settings.checkpointing, settings.compression
    backend = settings.backend()
    notes: list[str] = []
    layout, retention_days, lifecycle, kms, sse_kms = KeyLayout(), None, Lifecycle(), None, False
    compress, algorithm, file_format = snapshot_encoding(settings)
    blobs: BlobPlan | None = None
    explicit = "storage" in sm.snapshots.model_fields_set
    url = sm.snapshots.storage
    if isinstance(backend, FilesystemBackend):
        org = backend.organization
        layout = KeyLayout(by_pipeline=org.by_pipeline, by_date=org.by_date)
        retention_days = org.retention_days
        base = Path(backend.base_path)
        url = url if explicit else f"file://{base}"
        blobs = BlobPlan(root=str(base / "blobs"))
    elif isinstance(backend, S3Backend):
        endpoint = backend.endpoint_url or s3_endpoint
        url = url if explicit else f"s3://{backend.bucket}/{backend.prefix.strip('/')}"
        lifecycle = Lifecycle(backend.lifecycle.transition_to_glacier, backend.lifecycle.expiration)
        kms = backend.encryption.kms_key if backend.encryption.enabled else None
        sse_kms = backend.encryption.enabled
        blobs = BlobPlan(
            bucket=backend.bucket,
            prefix=blob_prefix(backend.prefix),
            endpoint_url=endpoint,
        )
        s3_endpoint = endpoint
    elif isinstance(backend, MemoryBackend):
        raise PlanError(
            'state_management.backend "memory" keeps everything in one process, with no '
            'servers: use orchestrator.connect(backend="memory"); the server commands '
            "need postgresql, filesystem or s3"
        )
    elif not explicit and data_dir is not None:
        url = f"file://{data_dir / 'snapshots'}"
    if blobs is None:
        if data_dir is not None:
            blobs = BlobPlan(root=str(data_dir / "blobs"))
        elif url.startswith("file://"):
            blobs = BlobPlan(root=str(Path(url.removeprefix("file://")) / "blobs"))
        elif url.startswith("s3://"):
            bucket, _, prefix = url.removeprefix("s3://").partition("/")
            blobs = BlobPlan(
                bucket=bucket,
                prefix=blob_prefix(prefix),
                endpoint_url=s3_endpoint,
            )
    policy = snapshot_policy(settings)
    ret = ck.storage.retention
    plan = SnapshotPlan(
        enabled=sm.snapshots.enabled,
        store_url=url,
        endpoint_url=s3_endpoint if url.startswith("s3://") else None,
        sse_kms=sse_kms,
        kms_key=kms,
        compress=compress,
        level=comp.level,
        min_size=comp.selective.min_size,
        algorithm=algorithm,
        file_format=file_format,
        encrypt=ck.storage.encrypt,
        policy=policy,
        layout=layout,
        retention=RetentionPolicy(
            max_checkpoints=ret.max_checkpoints,
            max_age_days=ret.max_age_days,
            retention_days=retention_days,
            blob_grace_hours=ret.blob_grace_hours,
        ),
        lifecycle=lifecycle,
    )
    return plan, blobs, notes
