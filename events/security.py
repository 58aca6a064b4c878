"""How every Kafka client of the product authenticates: SASL (SCRAM, PLAIN) and TLS.

One value, :class:`KafkaSecurity`, is built once at the entry point (from the YAML
``event_store.kafka_security`` block and the ``KAFKA_*`` environment variables, see
``orchestrator.config``) and passed down; :meth:`KafkaSecurity.client_kwargs` is the
only place that turns it into aiokafka arguments, so the producer, the consumers, the
admin client and the idempotence probe all connect the same way. An inconsistent
combination is refused when the value is made, naming the option.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast, get_args

from orchestrator.events.errors import EventsError, error_fields

SecurityProtocol = Literal["PLAINTEXT", "SASL_PLAINTEXT", "SASL_SSL", "SSL"]
SaslMechanism = Literal["SCRAM-SHA-256", "SCRAM-SHA-512", "PLAIN"]

PROTOCOLS: tuple[str, ...] = get_args(SecurityProtocol)
MECHANISMS: tuple[str, ...] = get_args(SaslMechanism)

KAFKA_SECURITY_PROTOCOL = "KAFKA_SECURITY_PROTOCOL"
KAFKA_SASL_MECHANISM = "KAFKA_SASL_MECHANISM"
KAFKA_SASL_USERNAME = "KAFKA_SASL_USERNAME"
KAFKA_SASL_PASSWORD = "KAFKA_SASL_PASSWORD"  # the variable's name, not a secret
KAFKA_SASL_PASSWORD_FILE = "KAFKA_SASL_PASSWORD_FILE"
KAFKA_SSL_CAFILE = "KAFKA_SSL_CAFILE"
KAFKA_SSL_CERTFILE = "KAFKA_SSL_CERTFILE"
KAFKA_SSL_KEYFILE = "KAFKA_SSL_KEYFILE"
KAFKA_SSL_CHECK_HOSTNAME = "KAFKA_SSL_CHECK_HOSTNAME"


@error_fields("kafka security: {option}: {reason}")
class KafkaSecurityError(EventsError, ValueError):
    """A security option that is unknown or does not fit the others; names the option."""

    option: str
    reason: str


@dataclass(frozen=True)
class KafkaSecurity:
    """The security settings of every Kafka client; the default is plain text.

    ``password`` is never printed (``repr`` hides it); it comes from an environment
    variable or a file, never from the YAML file.
    """

    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_check_hostname: bool = True

    def __post_init__(self) -> None:
        if self.security_protocol not in PROTOCOLS:
            raise KafkaSecurityError(
                "security_protocol", f"{self.security_protocol!r} is not one of {PROTOCOLS}"
            )
        if self.sasl:
            self._check_sasl()
        else:
            for name in ("sasl_mechanism", "username", "password"):
                if getattr(self, name) is not None:
                    raise KafkaSecurityError(
                        name, f"needs a SASL security_protocol, not {self.security_protocol}"
                    )
        if not self.tls:
            for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
                if getattr(self, name) is not None:
                    raise KafkaSecurityError(
                        name,
                        f"needs security_protocol SSL or SASL_SSL, not {self.security_protocol}",
                    )
        if (self.ssl_certfile is None) != (self.ssl_keyfile is None):
            raise KafkaSecurityError(
                "ssl_keyfile", "a client certificate needs both certfile and keyfile"
            )
        for name in ("ssl_cafile", "ssl_certfile", "ssl_keyfile"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise KafkaSecurityError(name, f"no such file: {path}")

    def _check_sasl(self) -> None:
        if self.sasl_mechanism is None:
            raise KafkaSecurityError(
                "sasl_mechanism", f"{self.security_protocol} needs one of {MECHANISMS}"
            )
        if self.sasl_mechanism not in MECHANISMS:
            raise KafkaSecurityError(
                "sasl_mechanism", f"{self.sasl_mechanism!r} is not one of {MECHANISMS}"
            )
        if not self.username:
            raise KafkaSecurityError("username", f"{self.security_protocol} needs a username")
        if not self.password:
            raise KafkaSecurityError(
                "password",
                f"{self.security_protocol} needs a password "
                f"(set {KAFKA_SASL_PASSWORD} or {KAFKA_SASL_PASSWORD_FILE})",
            )

    @property
    def sasl(self) -> bool:
        return self.security_protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.security_protocol in ("SSL", "SASL_SSL")

    def describe(self) -> str:
        """What a user may see: protocol, mechanism and user, never the password."""
        if not self.sasl:
            return self.security_protocol
        return f"{self.security_protocol} {self.sasl_mechanism} as {self.username}"

    def as_env(self, password_file: str | None = None) -> dict[str, str]:
        """The variables ``from_env`` reads this SASL login back from (empty without
        SASL); the password only by its file, since exports get printed."""
        if not self.sasl:
            return {}
        env = {
            KAFKA_SECURITY_PROTOCOL: self.security_protocol,
            KAFKA_SASL_MECHANISM: self.sasl_mechanism or "",
            KAFKA_SASL_USERNAME: self.username or "",
        }
        if password_file is not None:
            env[KAFKA_SASL_PASSWORD_FILE] = password_file
        return env

    def client_kwargs(self) -> dict[str, Any]:
        """The keyword arguments every aiokafka client takes for this security."""
        kwargs: dict[str, Any] = {"security_protocol": self.security_protocol}
        if self.sasl:
            kwargs.update(
                sasl_mechanism=self.sasl_mechanism,
                sasl_plain_username=self.username,
                sasl_plain_password=self.password,
            )
        if self.tls:
            kwargs["ssl_context"] = self.ssl_context()
        return kwargs

    def ssl_context(self) -> ssl.SSLContext:
        """A client TLS context: the CA file (else the system's), the client certificate."""
        context = ssl.create_default_context(cafile=self.ssl_cafile)
        context.check_hostname = self.ssl_check_hostname
        if not self.ssl_check_hostname:
            context.verify_mode = ssl.CERT_REQUIRED
        if self.ssl_certfile is not None:
            context.load_cert_chain(self.ssl_certfile, self.ssl_keyfile)
        return context

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, base: KafkaSecurity | None = None
    ) -> KafkaSecurity:
        """``base`` (default plain text) with the ``KAFKA_*`` variables set in ``environ``
        overriding it; the password comes from ``KAFKA_SASL_PASSWORD`` or the file named
        by ``KAFKA_SASL_PASSWORD_FILE``."""
        env = os.environ if environ is None else environ
        b = base or cls()
        protocol = (env.get(KAFKA_SECURITY_PROTOCOL) or b.security_protocol).upper()
        mechanism = env.get(KAFKA_SASL_MECHANISM) or b.sasl_mechanism
        check = env.get(KAFKA_SSL_CHECK_HOSTNAME)
        return cls(
            security_protocol=cast(SecurityProtocol, protocol),
            sasl_mechanism=cast(SaslMechanism, mechanism.upper()) if mechanism else None,
            username=env.get(KAFKA_SASL_USERNAME) or b.username,
            password=_password(env) or b.password,
            ssl_cafile=env.get(KAFKA_SSL_CAFILE) or b.ssl_cafile,
            ssl_certfile=env.get(KAFKA_SSL_CERTFILE) or b.ssl_certfile,
            ssl_keyfile=env.get(KAFKA_SSL_KEYFILE) or b.ssl_keyfile,
            ssl_check_hostname=b.ssl_check_hostname
            if check is None
            else check.strip().lower() not in ("0", "false", "no", "off"),
        )


def _password(env: Mapping[str, str]) -> str | None:
    if env.get(KAFKA_SASL_PASSWORD):
        return env[KAFKA_SASL_PASSWORD]
    path = env.get(KAFKA_SASL_PASSWORD_FILE)
    if not path:
        return None
    try:
        return Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise KafkaSecurityError(KAFKA_SASL_PASSWORD_FILE, f"cannot read {path}: {exc}") from exc


PLAINTEXT = KafkaSecurity()
