"""The ``state_management.event_store.kafka_security`` block and the ``KAFKA_*`` variables.

The YAML block holds what is not secret (protocol, mechanism, user, CA file); the
password comes only from ``KAFKA_SASL_PASSWORD``, or from a file named by
``sasl_password_file`` / ``KAFKA_SASL_PASSWORD_FILE``. :func:`kafka_security` merges
the block with the environment (variables win) into the one
``orchestrator.events.KafkaSecurity`` value that every Kafka client is given.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from orchestrator.events import KAFKA_SASL_PASSWORD_FILE, KafkaSecurity, KafkaSecurityError


class KafkaSecurityConfig(BaseModel):
    """How the product's Kafka clients authenticate (default: plain text)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    security_protocol: Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"] | None = None
    sasl_username: str | None = None
    sasl_password_file: str | None = Field(
        None, description="file holding the SASL password (or set KAFKA_SASL_PASSWORD)"
    )
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_check_hostname: bool = True

    @model_validator(mode="after")
    def _consistent(self) -> KafkaSecurityConfig:
        # The combination is checked as a client would get it; the password (from the
        # environment) is checked when the environment is read.
        sasl = self.security_protocol.startswith("SASL_")
        try:
            KafkaSecurity(
                security_protocol=self.security_protocol,
                sasl_mechanism=self.sasl_mechanism,
                username=self.sasl_username or ("-" if sasl else None),
                password="-" if sasl else None,
                ssl_check_hostname=self.ssl_check_hostname,
            )
        except KafkaSecurityError as exc:
            option = {"username": "sasl_username"}.get(exc.option, exc.option)
            raise ValueError(f"{option}: {str(exc).split(': ', 2)[-1]}") from None
        if not sasl and self.sasl_password_file is not None:
            raise ValueError(
                f"sasl_password_file: needs a SASL protocol, not {self.security_protocol}"
            )
        tls = self.security_protocol in ("SSL", "SASL_SSL")
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            if not tls and getattr(self, name) is not None:
                raise ValueError(f"{name}: needs security_protocol SSL or SASL_SSL")
        return self


def kafka_security(config: KafkaSecurityConfig | None, environ: Mapping[str, str]) -> KafkaSecurity:
    """The block merged with the ``KAFKA_*`` variables of ``environ`` (which win);
    raises ``KafkaSecurityError`` naming the option when the result is inconsistent."""
    c = config or KafkaSecurityConfig()
    env = dict(environ)
    if c.sasl_password_file and not env.get("KAFKA_SASL_PASSWORD"):
        env.setdefault(KAFKA_SASL_PASSWORD_FILE, c.sasl_password_file)
    base = KafkaSecurity(
        security_protocol="SSL" if c.security_protocol == "SSL" else "PLAINTEXT",
        ssl_check_hostname=c.ssl_check_hostname,
    )
    return KafkaSecurity.from_env({**_block_env(c), **{k: v for k, v in env.items() if v}}, base)


def _block_env(c: KafkaSecurityConfig) -> dict[str, str]:
    """The block as the variables it stands for (so that one merge rule applies)."""
    pairs = {
        "KAFKA_SECURITY_PROTOCOL": c.security_protocol,
        "KAFKA_SASL_MECHANISM": c.sasl_mechanism,
        "KAFKA_SASL_USERNAME": c.sasl_username,
        "KAFKA_SSL_CAFILE": c.ssl_cafile,
        "KAFKA_SSL_CERTFILE": c.ssl_certfile,
        "KAFKA_SSL_KEYFILE": c.ssl_keyfile,
    }
    return {k: v for k, v in pairs.items() if v}
