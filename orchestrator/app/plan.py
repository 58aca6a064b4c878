"""From loaded ``Settings`` and service endpoints to what every component is built with.

Pure: no connection is made here, so the mapping is testable and printable
(``AppPlan.notes`` lists what a setting does *not* do here). ``orchestrator.app.App``
builds the components from the plan.

=================================================  =====================================
setting                                            becomes
=================================================  =====================================
``distributed.synchronization.replication``        both event topics (and DLQs):
  ``factor`` / ``min_replicas``                    replication factor / ``min.insync.replicas``
                                                   (producer acks=all); capped at the broker
                                                   count when ``max_replication`` is given (dev)
``...synchronization.strategy``                    ``StateSettings.sync``: what every read
  ``conflict_resolution`` / ``sync_interval``      reflects (``orchestrator.state.sync``)
``caching``                                        ``StateSettings.cache``: the levels before
                                                   the read model (``orchestrator.app.caching``)
``state_management.event_store.topics``            topic names; ``partitions``: partitions
``state_management.event_store.retention``         ``retention.ms`` (days) and
                                                   ``retention.bytes`` (size / partitions)
                                                   of the pipeline topic
``...event_store.delivery_timeout_ms``             deadline of one append (``LogError``)
``state_management.snapshots``                     snapshotter on/off, ``frequency`` (every N
  ``enabled`` / ``frequency`` / ``storage``        events), snapshot store URL
``state_management.config`` (``backend``)          filesystem ``base_path``: snapshot store and
                                                   blobs there, ``organization`` → key layout
                                                   and ``retention_days``; s3 ``bucket`` /
                                                   ``prefix`` / ``lifecycle`` /
                                                   ``encryption.kms_key``: S3 store (SSE-KMS)
                                                   and blobs; postgresql ``connection_string``
                                                   (DATABASE_URL wins), ``pool_size`` → pool
                                                   max_size, ``schema`` → read-model tables;
                                                   memory: refused (one process only)
``checkpointing``                                  ``CheckpointPolicy`` of the runtime, and
                                                   the snapshotter's triggers
``checkpointing.storage.compress`` / ``encrypt``   snapshot codec: compression / AES-256-GCM (keys
                                                   from ``ORCHESTRATOR_SNAPSHOT_KEYS``)
``checkpointing.storage.retention``                ``RetentionPolicy`` applied by the app's
                                                   pruning loop (hourly)
``recovery``                                       ``RetryPolicy`` (task_failure),
                                                   ``RecoveryPolicy`` (pipeline_crash,
                                                   node_failure, health_checks); execution
                                                   lease ttl = min(timeouts)/2 in [1, 30] s
``compression``                                    user data (task I/O, checkpoint data) and
                                                   blobs: ``algorithm`` at ``level`` above
                                                   ``selective.min_size`` bytes, with
                                                   ``exclude_fields`` kept out; snapshots:
                                                   same algorithm, level and min_size (a
                                                   filesystem backend's ``compression`` wins)
``shared_state``                                   variables created at start when absent
=================================================  =====================================
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

from orchestrator.app.caching import cache_config_from, sync_policy_from
from orchestrator.app.topics import topics_from
from orchestrator.commands import WriterSettings
from orchestrator.commands.ports import UserDataSettings
from orchestrator.commands.shared import SharedSettings
from orchestrator.config import (
    FilesystemBackend,
    MemoryBackend,
    PostgresBackend,
    S3Backend,
    Settings,
    parse_size,
)
from orchestrator.config.kafka_security import kafka_security
from orchestrator.events import CompressionAlgorithm, check_level
from orchestrator.events.limits import InputLimits
from orchestrator.events.security import PLAINTEXT, KafkaSecurity, KafkaSecurityError
from orchestrator.events.topics import TopicsConfig
from orchestrator.projections import DEFAULT_INDEXES
from orchestrator.projections.migrate import TableNames
from orchestrator.projections.settings import ProjectionSettings, ReadModelTables
from orchestrator.runtime.policy import CheckpointPolicy, Policies, RecoveryPolicy, RetryPolicy
from orchestrator.snapshots.policy import RetentionPolicy, SnapshotPolicy
from orchestrator.snapshots.store import KeyLayout, Lifecycle, blob_prefix
from orchestrator.state.runtime import StateSettings

_NEVER = 2**62  # a compression threshold no value reaches

Consistency = Literal["strong", "eventual", "causal"]


FileFormat = Literal["raw", "json", "msgpack"]
"""How a filesystem store writes each snapshot file (see ``snapshots.filesystem``)."""


class PlanError(ValueError):
    """The settings and endpoints do not describe a runnable stack (names the setting)."""


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


@dataclass(frozen=True, slots=True, kw_only=True)
class AppPlan:
    """Everything the app builds, derived from settings (see the module docstring)."""

    dsn: str
    bootstrap: str
    supports_idempotence: bool | None
    pool_size: int
    topics: TopicsConfig
    projection: ProjectionSettings
    state: StateSettings
    policies: Policies
    consistency: Consistency
    conflict_resolution: str
    snapshots: SnapshotPlan
    blobs: BlobPlan | None
    delivery_timeout_ms: int = 30_000
    kafka_security: KafkaSecurity = PLAINTEXT
    """SASL / TLS of every Kafka client the app opens."""
    notes: tuple[str, ...] = ()
    indexes: tuple[str, ...] = DEFAULT_INDEXES
    """Columns of the state tables to index (postgresql ``indexes``), made by migrate."""
    s3_region: str | None = None
    """The s3 backend's ``region`` when set: every S3 client the app builds uses it
    (over ``AWS_DEFAULT_REGION``)."""
    connect_timeout: float = 10.0
    """Seconds each connection attempt (PostgreSQL, Kafka) may take before failing."""
    etcd_endpoints: tuple[str, ...] = ()
    """Coordination on etcd at these endpoints; empty: PostgreSQL leases."""

    @property
    def node_id(self) -> str:
        return self.state.node_id

    @property
    def table_names(self) -> TableNames:
        t = self.projection.tables
        return TableNames(t.pipeline_states, t.task_states, t.checkpoints, indexes=self.indexes)


def lease_ttl_for(recovery: RecoveryPolicy) -> float:
    """An execution lease expires well before the supervisor would act on it."""
    timeouts = [t for t in (recovery.crash_timeout, recovery.failover_timeout) if t > 0]
    return min(30.0, max(1.0, min(timeouts, default=60.0) / 2))


def policies_from(settings: Settings) -> Policies:
    """The runtime's policies from ``checkpointing`` and ``recovery``."""
    ck, rec = settings.checkpointing, settings.recovery
    tf, hc = rec.strategies.task_failure, rec.health_checks
    return Policies(
        retry=RetryPolicy(
            max_attempts=tf.max_attempts,
            backoff=tf.backoff,
            base_delay=tf.base_delay,
            max_delay=tf.max_delay,
        ),
        checkpoints=CheckpointPolicy.of(
            ck.strategy,
            enabled=ck.enabled,
            after_tasks=ck.progressive.after_tasks,
            min_interval=ck.progressive.min_interval,
            interval=ck.periodic.interval,
            on_success_tasks=ck.on_success.tasks,
        ),
        recovery=RecoveryPolicy(
            enabled=rec.enabled,
            crash_timeout=rec.strategies.pipeline_crash.timeout,
            failover_timeout=rec.strategies.node_failure.failover_timeout,
            health_interval=hc.interval,
            health_timeout=hc.timeout,
            failure_threshold=hc.failure_threshold,
            max_concurrent=rec.max_concurrent_recoveries,
        ),
    )


def _user_data(settings: Settings, notes: list[str]) -> UserDataSettings:
    comp = settings.compression
    if not settings.checkpointing.storage.compress and comp.enabled:
        notes.append(
            "checkpointing.storage.compress false: snapshots are not compressed; checkpoint "
            "data in events follows the `compression` block"
        )
    return UserDataSettings(
        compress_threshold=comp.selective.min_size if comp.enabled else _NEVER,
        compression_level=comp.level,
        algorithm=comp.algorithm,
        exclude_fields=tuple(comp.selective.exclude_fields),
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


def _storage(
    settings: Settings, data_dir: Path | None, s3_endpoint: str | None
) -> tuple[SnapshotPlan, BlobPlan | None, list[str]]:
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
    strategy = ck.strategy
    policy = SnapshotPolicy(
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


def plan_app(
    settings: Settings,
    *,
    bootstrap: str | None,
    dsn: str | None,
    node_id: str,
    s3_endpoint: str | None = None,
    supports_idempotence: bool | None = None,
    data_dir: Path | None = None,
    projection_name: str = "read_models",
    max_replication: int | None = None,
    connect_timeout: float = 10.0,
    environ: Mapping[str, str] | None = None,
) -> AppPlan:
    """The plan for one process of the stack (see the module docstring's table).

    ``environ``: the ``KAFKA_SECURITY_PROTOCOL`` / ``KAFKA_SASL_*`` / ``KAFKA_SSL_*``
    variables, merged over ``event_store.kafka_security`` (none: that block alone)."""
    notes: list[str] = []
    backend = settings.backend()
    tables = ReadModelTables()
    pool_size, indexes = 10, DEFAULT_INDEXES
    if isinstance(backend, PostgresBackend):
        s = backend.schema_
        tables = replace(
            tables,
            pipeline_states=s.pipeline_states,
            task_states=s.task_states,
            checkpoints=s.checkpoints,
        )
        pool_size = backend.pool_size
        indexes = tuple(backend.indexes)
        dsn = dsn or backend.connection_string
    if not dsn:
        raise PlanError(
            "no PostgreSQL: set DATABASE_URL or state_management.config.connection_string"
        )
    if not bootstrap:
        raise PlanError("no Kafka: set KAFKA_BOOTSTRAP_SERVERS")
    try:
        security = kafka_security(
            settings.state_management.event_store.kafka_security, environ or {}
        )
    except KafkaSecurityError as exc:
        raise PlanError(str(exc)) from None
    topics = topics_from(settings, max_replication=max_replication, notes=notes)
    lim = settings.state_management.limits
    projection = ProjectionSettings(
        name=projection_name,
        pipeline_topic=topics.pipeline.name,
        shared_topic=topics.shared.name,
        tables=tables,
        limits=InputLimits(
            max_record_bytes=parse_size(lim.max_record_size),
            max_user_data_bytes=parse_size(lim.max_user_data_size),
            max_identifier_bytes=lim.max_identifier_length,
        ),
        max_dead_letter_bytes=parse_size(lim.max_dead_letter_size),
    )
    policies = policies_from(settings)
    writer = WriterSettings(
        lease_ttl=lease_ttl_for(policies.recovery), user_data=_user_data(settings, notes)
    )
    cache = cache_config_from(
        settings, environ=environ or {}, data_dir=data_dir, dsn=dsn, projection=projection_name
    )
    state = StateSettings(
        node_id=node_id,
        projection=projection,
        writer=writer,
        shared=SharedSettings(user_data=writer.user_data),
        sync=sync_policy_from(settings),
        cache=cache,
    )
    snapshots, blobs, storage_notes = _storage(settings, data_dir, s3_endpoint)
    notes.extend(storage_notes)
    sync = settings.distributed.synchronization
    return AppPlan(
        dsn=dsn,
        bootstrap=bootstrap,
        supports_idempotence=supports_idempotence,
        pool_size=pool_size,
        indexes=indexes,
        s3_region=backend.region
        if isinstance(backend, S3Backend) and "region" in backend.model_fields_set
        else None,
        topics=topics,
        projection=projection,
        state=state,
        policies=policies,
        consistency=sync.strategy,
        conflict_resolution=sync.conflict_resolution,
        snapshots=snapshots,
        blobs=blobs,
        delivery_timeout_ms=settings.state_management.event_store.delivery_timeout_ms,
        notes=tuple(notes),
        connect_timeout=connect_timeout,
        kafka_security=security,
        etcd_endpoints=_etcd_endpoints(settings),
    )


def _etcd_endpoints(settings: Settings) -> tuple[str, ...]:
    coordination = settings.distributed.coordination
    return tuple(coordination.endpoints) if coordination.backend == "etcd" else ()
