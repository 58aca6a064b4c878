"""Typed settings for every YAML block of the seed document, loaded as written.

Each model forbids unknown keys, so a typo fails with its name and file position.
Options that are not settings or not supported are refused by
``orchestrator.config.notices`` with an error saying why. Nothing is accepted with a
warning or ignored. The backends' models (``state_management.config``) are in
``orchestrator.config.backends``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, ValidationInfo, field_validator, model_validator

from orchestrator.config._base import FORBID_UNKNOWN, parse_size
from orchestrator.config.backends import (
    FilesystemBackend,
    MemoryBackend,
    PostgresBackend,
    RedisBackend,
    S3Backend,
)
from orchestrator.config.kafka_auth import KafkaSecurityConfig
from orchestrator.events import check_level


class _Model(BaseModel):
    model_config = FORBID_UNKNOWN


# --- state_management ----------------------------------------------------------------


class EventStoreTopics(_Model):
    pipeline_events: str = "orchestrator.pipeline.events"
    task_events: str | None = None
    shared_events: str = "orchestrator.shared.events"


class EventStoreRetention(_Model):
    days: float | None = Field(30, gt=0)
    size: str | None = None

    _size = field_validator("size")(lambda v: v if v is None else (parse_size(v), v)[1])


class EventStore(_Model):
    backend: Literal["kafka"] = "kafka"
    topics: EventStoreTopics = EventStoreTopics()
    retention: EventStoreRetention = EventStoreRetention()
    partitions: int = Field(6, ge=1)
    delivery_timeout_ms: int = Field(
        30_000, ge=1, description="deadline of one append; past it the append fails"
    )
    kafka_security: KafkaSecurityConfig = KafkaSecurityConfig()


class SnapshotsSettings(_Model):
    enabled: bool = True
    frequency: int = Field(100, ge=1, description="a snapshot every N events per execution")
    storage: str = "file://.orchestrator-state/snapshots"

    @field_validator("storage")
    @classmethod
    def _known_scheme(cls, value: str) -> str:
        if not re.match(r"^(s3://[^/]+.*|file://.+|memory://.*|/.+)$", value):
            raise ValueError(f"{value!r}: expected s3://bucket[/prefix], file://path or memory://")
        return value


class InputLimitsSettings(_Model):
    """What one record may hold (``orchestrator.events.limits``); over a limit → DLQ."""

    max_record_size: int | str = Field("1MB", description="an encoded record, e.g. '1MB'")
    max_user_data_size: int | str = Field(
        "16MB", description="one user-data value once decompressed, e.g. '16MB'"
    )
    max_identifier_length: int = Field(256, ge=1, le=2000, description="bytes of an id")
    max_dead_letter_size: int | str = Field(
        "512KB", description="a poison record bigger than this is dead-lettered by reference"
    )

    @field_validator("max_record_size", "max_user_data_size", "max_dead_letter_size")
    @classmethod
    def _size(cls, value: int | str) -> int | str:
        size = parse_size(value)
        if not 1 <= size <= 1024**3:
            raise ValueError(f"{value!r}: expected a size between 1B and 1GB")
        return value


class StateManagement(_Model):
    backend: Literal["memory", "filesystem", "postgresql", "redis", "s3"] | None = None
    pattern: Literal["event_sourcing"] | None = None
    config: dict[str, object] = {}
    event_store: EventStore = EventStore()
    snapshots: SnapshotsSettings = SnapshotsSettings()
    limits: InputLimitsSettings = InputLimitsSettings()


BACKEND_MODELS: dict[str, type[BaseModel]] = {
    "memory": MemoryBackend,
    "filesystem": FilesystemBackend,
    "postgresql": PostgresBackend,
    "redis": RedisBackend,
    "s3": S3Backend,
}

# --- checkpointing -------------------------------------------------------------------


class Progressive(_Model):
    after_tasks: list[str] = []
    min_interval: float = Field(60, ge=0)


class Periodic(_Model):
    interval: float = Field(300, gt=0)


class OnSuccess(_Model):
    tasks: list[str] = []


class CheckpointRetention(_Model):
    max_checkpoints: int | None = Field(10, ge=1)
    max_age_days: float | None = Field(7, gt=0)
    blob_grace_hours: float = Field(24, gt=0)


class CheckpointStorage(_Model):
    compress: bool = True
    encrypt: bool = False
    retention: CheckpointRetention = CheckpointRetention()


class Checkpointing(_Model):
    enabled: bool = True
    strategy: Literal["progressive", "periodic", "on_success"] = "progressive"
    progressive: Progressive = Progressive()
    periodic: Periodic = Periodic()
    on_success: OnSuccess = OnSuccess()
    storage: CheckpointStorage = CheckpointStorage()


# --- recovery ------------------------------------------------------------------------


class TaskFailure(_Model):
    action: Literal["retry_from_checkpoint"] = "retry_from_checkpoint"
    max_attempts: int = Field(3, ge=1)
    backoff: Literal["exponential", "constant"] = "exponential"
    base_delay: float = Field(1.0, ge=0)
    max_delay: float = Field(60.0, ge=0)


class PipelineCrash(_Model):
    action: Literal["resume_from_last_checkpoint"] = "resume_from_last_checkpoint"
    timeout: float = Field(300, ge=0, description="seconds without progress before resuming")


class NodeFailure(_Model):
    action: Literal["redistribute_tasks"] = "redistribute_tasks"
    failover_timeout: float = Field(60, ge=0)


class RecoveryStrategies(_Model):
    task_failure: TaskFailure = TaskFailure()
    pipeline_crash: PipelineCrash = PipelineCrash()
    node_failure: NodeFailure = NodeFailure()


class HealthChecks(_Model):
    interval: float = Field(30, gt=0)
    timeout: float = Field(10, gt=0)
    failure_threshold: int = Field(3, ge=1)


class Recovery(_Model):
    enabled: bool = True
    strategies: RecoveryStrategies = RecoveryStrategies()
    health_checks: HealthChecks = HealthChecks()
    max_concurrent_recoveries: int = Field(
        32, ge=1, description="(ours) recovered executions one node drives at once"
    )


# --- distributed ---------------------------------------------------------------------


class Coordination(_Model):
    """Where leases, locks and leader election live: PostgreSQL (the default) or etcd
    (``commands.etcd_leases``); consul and zookeeper are refused (``config.notices``)."""

    backend: Literal["postgresql", "etcd", "consul", "zookeeper"] = "postgresql"
    endpoints: list[str] = []

    @model_validator(mode="after")
    def _etcd_needs_endpoints(self) -> Coordination:
        if self.backend == "etcd" and not self.endpoints:
            raise ValueError(
                "backend 'etcd' needs endpoints (e.g. ['http://etcd-1:2379']); "
                "or use backend 'postgresql'"
            )
        if self.backend == "postgresql" and self.endpoints:
            raise ValueError(
                "endpoints are for backend 'etcd'; PostgreSQL leases use the database's "
                "address (DATABASE_URL)"
            )
        return self


class Replication(_Model):
    """Kafka topics' durability; unset: replication min(3, brokers) and
    min.insync.replicas min(2, replication) (``events.topics.effective_spec``)."""

    factor: int | None = Field(None, ge=1, description="Kafka topics' replication factor")
    min_replicas: int | None = Field(None, ge=1, description="Kafka topics' min.insync.replicas")
    sync_interval: int | None = Field(None, ge=1, description="milliseconds")


class Synchronization(_Model):
    strategy: Literal["strong", "eventual", "causal"] = "eventual"
    conflict_resolution: Literal["last_write_wins", "reject"] = "last_write_wins"
    replication: Replication = Replication()


class Distributed(_Model):
    coordination: Coordination = Coordination()
    synchronization: Synchronization = Synchronization()


# --- caching, compression, monitoring ------------------------------------------------


class CacheLevel(_Model):
    type: Literal["memory", "redis", "disk"]
    size: str = "100MB"
    ttl: float = Field(60, gt=0)

    _size = field_validator("size")(lambda v: (parse_size(v), v)[1])


class CacheStrategies(_Model):
    read_through: bool = True
    write_through: bool = False
    cache_aside: bool = False


class CacheInvalidation(_Model):
    on_write: bool = True
    broadcast: bool = True


class Caching(_Model):
    levels: dict[str, CacheLevel] = {}
    strategies: CacheStrategies = CacheStrategies()
    invalidation: CacheInvalidation = CacheInvalidation()


class Selective(_Model):
    min_size: int = Field(1024, ge=0)
    exclude_fields: list[str] = []


class Compression(_Model):
    """User data, blobs and snapshots (``orchestrator.events.compression``)."""

    enabled: bool = True
    algorithm: Literal["zstd", "gzip", "lz4", "snappy"] = "zstd"
    level: int = Field(3, ge=1, le=22, description="zstd 1-22, gzip 1-9; lz4/snappy: none")
    selective: Selective = Selective()

    @field_validator("level")
    @classmethod
    def _level_fits(cls, level: int, info: ValidationInfo) -> int:
        problem = check_level(info.data.get("algorithm", "zstd"), level)
        if problem is not None:
            raise ValueError(problem)
        return level


KNOWN_METRICS = (
    "state_operations_total",
    "state_operation_duration",
    "state_size_bytes",
    "checkpoint_count",
    "recovery_attempts",
    "cache_hit_rate",
    "sync_lag_seconds",
)


KNOWN_DASHBOARDS = (
    "state_overview",
    "checkpoint_history",
    "recovery_timeline",
    "distributed_state_health",
)


class Monitoring(_Model):
    """What every process exports on ``/metrics`` and which dashboards are provided."""

    metrics: list[Literal[KNOWN_METRICS]] = list(KNOWN_METRICS)  # type: ignore[valid-type]
    dashboards: list[Literal[KNOWN_DASHBOARDS]] = list(KNOWN_DASHBOARDS)  # type: ignore[valid-type]


# --- state documents (the seed's "Task State" and "Shared State" blocks) -------------


class TaskStateDocument(_Model):
    """The seed's ``task_state``: a state document, validated against the task schema."""

    task_id: str
    status: Literal["pending", "scheduled", "running", "completed", "failed", "retrying", "skipped"]
    attempts: int = Field(0, ge=0)
    started_at: datetime | None = None
    completed_at: datetime | None = None
    inputs: dict[str, Any] | None = None
    outputs: dict[str, Any] | None = None
    execution_details: dict[str, Any] = {}


class SharedVariableSeed(_Model):
    type: Literal["str", "int", "float", "bool", "list", "dict", "json"]
    value: Any = None
    updated_by: str | None = None
    updated_at: datetime | None = None
    immutable: bool = False


class LockDocument(_Model):
    resource: str
    holder: str
    acquired_at: datetime | None = None
    ttl: float = Field(gt=0)


class SharedStateSeed(_Model):
    """The seed's ``shared_state``: a namespace's initial variables, set when absent."""

    namespace: str
    variables: dict[str, SharedVariableSeed] = {}
    locks: list[LockDocument] = []


# --- the whole file ------------------------------------------------------------------


class Settings(_Model):
    """Everything a configuration file may hold; every block optional."""

    state_management: StateManagement = StateManagement()
    checkpointing: Checkpointing = Checkpointing()
    recovery: Recovery = Recovery()
    distributed: Distributed = Distributed()
    caching: Caching = Caching()
    compression: Compression = Compression()
    monitoring: Monitoring = Monitoring()
    shared_state: SharedStateSeed | None = None
    task_state: TaskStateDocument | None = None

    def backend(self) -> BaseModel | None:
        """The typed ``state_management.config`` of the chosen backend."""
        name = self.state_management.backend
        if name is None:
            return None
        return BACKEND_MODELS[name].model_validate(self.state_management.config)
