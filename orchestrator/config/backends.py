"""The models of ``state_management.config``, one per ``state_management.backend``.

Each forbids unknown keys, as every settings model does; ``orchestrator.config.loader``
validates the ``config`` block against the chosen backend's model.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from orchestrator.config._base import FORBID_UNKNOWN, parse_size


class _Model(BaseModel):
    model_config = FORBID_UNKNOWN


class MemoryPersistence(_Model):
    enabled: bool = False
    interval: float = Field(60, gt=0, description="seconds between dumps to `path`")
    path: str = "/tmp/orchestrator_state"


class MemoryBackend(_Model):
    """Snapshots kept in memory (bounded, LRU), dumped to disk when persistence is on."""

    max_size: str = "1GB"
    eviction_policy: Literal["lru"] = "lru"
    persistence: MemoryPersistence = MemoryPersistence()

    _size = field_validator("max_size")(lambda v: (parse_size(v), v)[1])


class FilesystemOrganization(_Model):
    by_pipeline: bool = True
    by_date: bool = False
    retention_days: int | None = Field(None, ge=1)


class FilesystemBackend(_Model):
    """Snapshots and claim-checked blobs under `base_path`."""

    base_path: str = ".orchestrator-state/snapshots"
    format: Literal["json", "msgpack", "pickle"] = "json"
    compression: Literal["none", "zstd", "gzip", "lz4", "snappy"] = "zstd"
    organization: FilesystemOrganization = FilesystemOrganization()


class PostgresSchema(_Model):
    pipeline_states: str = "public.pipeline_states"
    task_states: str = "public.task_states"
    checkpoints: str = "public.checkpoints"


class PostgresBackend(_Model):
    """The read models: where they live, pool size, table names, indexes."""

    connection_string: str | None = None
    pool_size: int = Field(10, ge=1, le=500)
    schema_: PostgresSchema = Field(PostgresSchema(), alias="schema")
    indexes: list[str] = Field(
        ["pipeline_id", "execution_id", "status", "created_at"],
        description="columns of the state tables to index; checked against them by migrate",
    )

    @field_validator("indexes")
    @classmethod
    def _column_names(cls, columns: list[str]) -> list[str]:
        for column in columns:
            if not re.fullmatch(r"[a-z_][a-z0-9_]*", column):
                raise ValueError(f"{column!r} is not a column name ([a-z_][a-z0-9_]*)")
        return columns

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class RedisTtl(_Model):
    active_states: int = 3600
    completed_states: int = 86400


class RedisPersistence(_Model):
    aof_enabled: bool = True
    snapshot_interval: int = 300


class RedisBackend(_Model):
    url: str = "redis://localhost:6379"
    cluster_mode: bool = False
    key_prefix: str = "orchestrator:"
    ttl: RedisTtl = RedisTtl()
    persistence: RedisPersistence = RedisPersistence()


class S3Lifecycle(_Model):
    transition_to_glacier: int | None = Field(None, ge=1, description="days")
    expiration: int | None = Field(None, ge=1, description="days")


class S3Encryption(_Model):
    enabled: bool = False
    kms_key: str | None = None


class S3Backend(_Model):
    """Snapshots and claim-checked blobs in an S3 bucket."""

    bucket: str = "orchestrator-state"
    region: str = "us-east-1"
    prefix: str = "states/"
    endpoint_url: str | None = None
    lifecycle: S3Lifecycle = S3Lifecycle()
    encryption: S3Encryption = S3Encryption()
