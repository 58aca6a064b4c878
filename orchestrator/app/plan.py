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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from orchestrator.app.caching import cache_config_from, sync_policy_from
from orchestrator.app.errors import PlanError
from orchestrator.app.snapshot_plan import (
    BlobPlan,
    SnapshotPlan,
    plan_snapshots,
)
from orchestrator.app.topics import topics_from
from orchestrator.commands import SharedSettings, UserDataSettings, WriterSettings
from orchestrator.config import (
    PostgresBackend,
    S3Backend,
    Settings,
    kafka_security,
    parse_size,
)
from orchestrator.events import (
    PLAINTEXT,
    InputLimits,
    KafkaSecurity,
    KafkaSecurityError,
    TopicsConfig,
)
from orchestrator.projections import (
    DEFAULT_INDEXES,
    ProjectionSettings,
    ReadModelTables,
    TableNames,
)
from orchestrator.runtime import CheckpointPolicy, Policies, RecoveryPolicy, RetryPolicy
from orchestrator.state import StateSettings

_NEVER = 2**62  # a compression threshold no value reaches

Consistency = Literal["strong", "eventual", "causal"]


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


@dataclass(frozen=True, slots=True, kw_only=True)
class PostgresPlan:
    """The read model's PostgreSQL settings (the postgresql backend's ``schema``,
    ``indexes``, ``pool_size``, ``connection_string``; defaults otherwise)."""

    tables: ReadModelTables = field(default_factory=ReadModelTables)
    indexes: tuple[str, ...] = DEFAULT_INDEXES
    pool_size: int = 10
    dsn: str | None = None
    """The configured connection string (``DATABASE_URL`` wins where a command has it)."""

    @property
    def table_names(self) -> TableNames:
        t = self.tables
        return TableNames(t.pipeline_states, t.task_states, t.checkpoints, indexes=self.indexes)


def plan_postgres(settings: Settings) -> PostgresPlan:
    """The one reading of the read model's tables and connection, for ``plan_app`` and
    the commands that need only PostgreSQL (``migrate``, ``project``, ``replay`` ...)."""
    backend = settings.backend()
    if not isinstance(backend, PostgresBackend):
        return PostgresPlan()
    s = backend.schema_
    return PostgresPlan(
        tables=ReadModelTables(
            pipeline_states=s.pipeline_states, task_states=s.task_states, checkpoints=s.checkpoints
        ),
        indexes=tuple(backend.indexes),
        pool_size=backend.pool_size,
        dsn=backend.connection_string,
    )


def plan_projection(
    settings: Settings,
    name: str,
    *,
    pipeline_topic: str,
    shared_topic: str,
    tables: ReadModelTables | None = None,
) -> ProjectionSettings:
    """A projection's settings: its topics, the read model's tables (``plan_postgres``)
    and the input limits of ``state_management.limits``; for ``plan_app`` and the
    ``project`` / ``projections`` commands alike."""
    lim = settings.state_management.limits
    return ProjectionSettings(
        name=name,
        pipeline_topic=pipeline_topic,
        shared_topic=shared_topic,
        tables=plan_postgres(settings).tables if tables is None else tables,
        limits=InputLimits(
            max_record_bytes=parse_size(lim.max_record_size),
            max_user_data_bytes=parse_size(lim.max_user_data_size),
            max_identifier_bytes=lim.max_identifier_length,
        ),
        max_dead_letter_bytes=parse_size(lim.max_dead_letter_size),
    )


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
    pg = plan_postgres(settings)
    tables, pool_size, indexes = pg.tables, pg.pool_size, pg.indexes
    dsn = dsn or pg.dsn
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
    projection = plan_projection(
        settings,
        projection_name,
        pipeline_topic=topics.pipeline.name,
        shared_topic=topics.shared.name,
        tables=tables,
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
    snapshots, blobs, storage_notes = plan_snapshots(settings, data_dir, s3_endpoint)
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
