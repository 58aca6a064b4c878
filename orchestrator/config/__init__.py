"""Configuration: the seed's YAML blocks loaded as written into frozen, typed settings."""

from orchestrator.config._base import parse_size
from orchestrator.config.backends import (
    FilesystemBackend,
    MemoryBackend,
    PostgresBackend,
    RedisBackend,
    S3Backend,
)
from orchestrator.config.kafka_auth import kafka_security
from orchestrator.config.loader import (
    ConfigError,
    ConfigIssue,
    LoadedConfig,
    load_config,
    load_config_file,
)
from orchestrator.config.models import KNOWN_DASHBOARDS, Settings
from orchestrator.config.redaction import redact, redact_text

__all__ = [
    "KNOWN_DASHBOARDS",
    "ConfigError",
    "ConfigIssue",
    "FilesystemBackend",
    "LoadedConfig",
    "MemoryBackend",
    "PostgresBackend",
    "RedisBackend",
    "S3Backend",
    "Settings",
    "kafka_security",
    "load_config",
    "load_config_file",
    "parse_size",
    "redact",
    "redact_text",
]
