"""Where the services are: addresses and credentials, read from or written to env vars.

The same environment variables work in both directions: `ServiceEndpoints.from_env`
reads an external Kafka / PostgreSQL / S3 from them, and `as_env()` produces them
for a started stack (what `orchestrator-state services up` prints as exports).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.events import (
    KAFKA_SASL_PASSWORD_FILE,
    PLAINTEXT,
    KafkaSecurity,
    KafkaSecurityError,
)

from ._errors import DevstackError
from ._s3 import DEFAULT_BUCKET, s3_client

KAFKA_BOOTSTRAP_SERVERS = "KAFKA_BOOTSTRAP_SERVERS"
KAFKA_SUPPORTS_IDEMPOTENCE = "KAFKA_SUPPORTS_IDEMPOTENCE"
DATABASE_URL = "DATABASE_URL"
S3_ENDPOINT_URL = "S3_ENDPOINT_URL"
S3_BUCKET = "S3_BUCKET"
AWS_ACCESS_KEY_ID = "AWS_ACCESS_KEY_ID"
AWS_SECRET_ACCESS_KEY = "AWS_SECRET_ACCESS_KEY"
AWS_DEFAULT_REGION = "AWS_DEFAULT_REGION"
REDIS_URL = "REDIS_URL"
REDIS_CLUSTER_URL = "REDIS_CLUSTER_URL"
DEFAULT_REGION = "us-east-1"


def _flag(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def _started(address: str | None, service: str, flag: str) -> str:
    """``address``, or the error saying the stack was started without ``service``."""
    if address is None:
        raise DevstackError(f"no {service} in this stack (started with {flag}=False)")
    return address


@dataclass(frozen=True)
class KafkaEndpoint:
    """A reachable Kafka-protocol broker."""

    bootstrap_servers: str
    supports_idempotence: bool
    description: str


@dataclass(frozen=True)
class S3Endpoint:
    """A reachable S3-compatible store and the bucket to use in it."""

    endpoint_url: str
    bucket: str
    access_key: str | None
    secret_key: str | None
    region: str

    def client(self) -> Any:
        """A boto3 S3 client (blocking: call it via asyncio.to_thread)."""
        return s3_client(self.endpoint_url, self.access_key, self.secret_key, self.region)


@dataclass(frozen=True)
class ServiceEndpoints:
    """Addresses of Kafka, PostgreSQL, S3 and Redis; a service not asked for has None fields."""

    kafka_bootstrap: str | None = None
    kafka_supports_idempotence: bool = False
    kafka_description: str | None = None
    kafka_security: KafkaSecurity = PLAINTEXT
    """How clients log in to Kafka (``KAFKA_SECURITY_PROTOCOL``, ``KAFKA_SASL_*``, ...)."""
    kafka_password_file: str | None = None
    database_url: str | None = None
    s3_endpoint_url: str | None = None
    s3_bucket: str | None = None
    s3_access_key: str | None = None
    s3_secret_key: str | None = None
    s3_region: str | None = None
    redis_url: str | None = None
    """A standalone Redis (``REDIS_URL``)."""
    redis_cluster_url: str | None = None
    """One node of a Redis cluster (``REDIS_CLUSTER_URL``); clients discover the rest."""

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ServiceEndpoints:
        """The external services named in `environ` (unset ones stay None)."""
        bootstrap = environ.get(KAFKA_BOOTSTRAP_SERVERS) or None
        s3_url = environ.get(S3_ENDPOINT_URL) or None
        try:
            security = KafkaSecurity.from_env(environ)
        except KafkaSecurityError:
            # Half of it may be in the YAML block: the app merges both and refuses
            # what is still inconsistent then (``config.kafka_security``).
            security = PLAINTEXT
        return cls(
            kafka_security=security,
            kafka_password_file=environ.get(KAFKA_SASL_PASSWORD_FILE) or None,
            kafka_bootstrap=bootstrap,
            kafka_supports_idempotence=bootstrap is not None
            and _flag(environ.get(KAFKA_SUPPORTS_IDEMPOTENCE, "true")),
            kafka_description=f"external Kafka at {bootstrap}" if bootstrap else None,
            database_url=environ.get(DATABASE_URL) or None,
            s3_endpoint_url=s3_url,
            s3_bucket=(environ.get(S3_BUCKET) or DEFAULT_BUCKET) if s3_url else None,
            s3_access_key=environ.get(AWS_ACCESS_KEY_ID) if s3_url else None,
            s3_secret_key=environ.get(AWS_SECRET_ACCESS_KEY) if s3_url else None,
            s3_region=(environ.get(AWS_DEFAULT_REGION) or DEFAULT_REGION) if s3_url else None,
            redis_url=environ.get(REDIS_URL) or None,
            redis_cluster_url=environ.get(REDIS_CLUSTER_URL) or None,
        )

    @property
    def kafka(self) -> KafkaEndpoint:
        return KafkaEndpoint(
            _started(self.kafka_bootstrap, "Kafka", "kafka"),
            self.kafka_supports_idempotence,
            self.kafka_description or f"Kafka at {self.kafka_bootstrap}",
        )

    @property
    def s3(self) -> S3Endpoint:
        return S3Endpoint(
            _started(self.s3_endpoint_url, "S3", "s3"),
            self.s3_bucket or DEFAULT_BUCKET,
            self.s3_access_key,
            self.s3_secret_key,
            self.s3_region or DEFAULT_REGION,
        )

    def as_env(self) -> dict[str, str]:
        """The environment variables that reach these services (only the ones that are set)."""
        env: dict[str, str] = {}
        if self.kafka_bootstrap:
            env[KAFKA_BOOTSTRAP_SERVERS] = self.kafka_bootstrap
            env[KAFKA_SUPPORTS_IDEMPOTENCE] = "true" if self.kafka_supports_idempotence else "false"
            env.update(self.kafka_security.as_env(self.kafka_password_file))
        if self.database_url:
            env[DATABASE_URL] = self.database_url
        if self.s3_endpoint_url:
            env[S3_ENDPOINT_URL] = self.s3_endpoint_url
            env[S3_BUCKET] = self.s3_bucket or DEFAULT_BUCKET
            if self.s3_access_key is not None:
                env[AWS_ACCESS_KEY_ID] = self.s3_access_key
            if self.s3_secret_key is not None:
                env[AWS_SECRET_ACCESS_KEY] = self.s3_secret_key
            env[AWS_DEFAULT_REGION] = self.s3_region or DEFAULT_REGION
        if self.redis_url:
            env[REDIS_URL] = self.redis_url
        if self.redis_cluster_url:
            env[REDIS_CLUSTER_URL] = self.redis_cluster_url
        return env
