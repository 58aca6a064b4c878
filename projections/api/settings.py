"""Configuration of the query API: one frozen object, read once at the entry point.

Environment variables use the ``ORCHESTRATOR_`` prefix (``ORCHESTRATOR_API_TOKEN``,
``ORCHESTRATOR_MAX_WAIT_MS``, ...); the database URL is also read from the
conventional ``DATABASE_URL``. Secrets are ``SecretStr`` so they never show in a
repr, a log line or a traceback.
"""

from __future__ import annotations

from typing import Self

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from orchestrator.projections.settings import ReadModelTables
from orchestrator.projections.store import OFFSETS_CHANNEL, STATE_CHANGES_CHANNEL

_DEFAULT_WAIT_MS = 5_000


class ApiSettings(BaseSettings):
    """Everything ``create_app`` needs; nothing is read or connected at import time."""

    model_config = SettingsConfigDict(
        env_prefix="ORCHESTRATOR_", frozen=True, extra="forbid", populate_by_name=True
    )

    database_url: SecretStr = Field(
        validation_alias=AliasChoices("database_url", "ORCHESTRATOR_DATABASE_URL", "DATABASE_URL"),
        description="PostgreSQL DSN of the read models (may hold a password: kept secret).",
    )
    api_token: SecretStr | None = Field(
        default=None,
        description="When set, every endpoint but /health requires `Authorization: Bearer`.",
    )
    tables: ReadModelTables = Field(
        default_factory=ReadModelTables,
        description="The read-model tables (the seed's `schema` block names the first three).",
    )
    projection: str = Field(
        default="read_models",
        min_length=1,
        description="The projection whose offsets answer read-your-writes waits.",
    )
    state_channel: str = Field(
        default=STATE_CHANGES_CHANNEL,
        pattern=r"^[a-z_][a-z0-9_]*$",
        description="Channel the processor NOTIFYs with a JSON array of changed execution ids.",
    )
    offsets_channel: str = Field(
        default=OFFSETS_CHANNEL,
        pattern=r"^[a-z_][a-z0-9_]*$",
        description="Channel the processor NOTIFYs with its name when its offsets advance.",
    )
    default_wait_ms: int | None = Field(
        default=None,
        ge=0,
        description="How long a read with `position` waits by default "
        "(unset: 5000 ms, or max_wait_ms if lower).",
    )
    max_wait_ms: int = Field(
        default=30_000, ge=0, le=600_000, description="The most a client may ask to wait."
    )
    pool_min_size: int = Field(default=1, ge=0)
    pool_max_size: int = Field(default=10, ge=1)
    query_timeout_seconds: float = Field(default=10.0, gt=0)
    stream_heartbeat_seconds: float = Field(
        default=15.0, gt=0, description="Idle SSE streams send a comment this often."
    )
    apply_migrations: bool = Field(
        default=False,
        description="Run the read-model migrations at startup (needs DDL rights).",
    )

    @property
    def wait_default_ms(self) -> int:
        """The wait of a read that passes ``position`` without ``wait_ms``."""
        if self.default_wait_ms is not None:
            return self.default_wait_ms
        return min(_DEFAULT_WAIT_MS, self.max_wait_ms)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.default_wait_ms is not None and self.default_wait_ms > self.max_wait_ms:
            raise ValueError(
                f"default_wait_ms ({self.default_wait_ms}) exceeds max_wait_ms ({self.max_wait_ms})"
            )
        if self.pool_min_size > self.pool_max_size:
            raise ValueError(
                f"pool_min_size ({self.pool_min_size}) exceeds pool_max_size ({self.pool_max_size})"
            )
        return self
