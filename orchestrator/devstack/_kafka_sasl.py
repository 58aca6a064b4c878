"""SCRAM users and ACLs for a devstack Apache Kafka that refuses unauthenticated clients.

The client listener speaks SASL_PLAINTEXT with SCRAM-SHA-512; its users are created
when the KRaft storage is formatted (``StorageTool format --add-scram``), because a
KRaft cluster has no ZooKeeper to hold them before the first start. The controller
listener (on loopback, broker to controller only) uses SASL PLAIN with the admin user
from a static JAAS entry. ``StandardAuthorizer`` with ``allow.everyone.if.no.acl.found
=false`` denies every user but the super user ``admin`` until :func:`grant_product_acls`
gives one user what the product needs.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from aiokafka.client import AIOKafkaClient
from aiokafka.errors import NoError, for_code
from aiokafka.protocol.admin import CreateAclsRequest

from orchestrator.events import KafkaSecurity, SaslMechanism

from ._ports import LOOPBACK

MECHANISM: SaslMechanism = "SCRAM-SHA-512"
ADMIN = "admin"

# Kafka's wire codes (org.apache.kafka.common.acl / resource).
_TOPIC, _GROUP, _CLUSTER = 2, 3, 4
_LITERAL = 3
_ALL, _CREATE, _DESCRIBE, _DESCRIBE_CONFIGS, _IDEMPOTENT_WRITE = 2, 5, 8, 10, 12
_ALLOW = 3


def _jaas(module: str, user: str, password: str, extra: str = "") -> str:
    return f'{module} required username="{user}" password="{password}"{extra};'


@dataclass(frozen=True)
class ScramUsers:
    """The broker's SCRAM users: ``admin`` (super user) and ``users`` by name."""

    admin_password: str = field(repr=False)
    users: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def generate(cls, *names: str) -> ScramUsers:
        """Random passwords for ``admin`` and each of ``names``."""
        return cls(secrets.token_urlsafe(18), {n: secrets.token_urlsafe(18) for n in names})

    def password(self, user: str) -> str:
        return self.admin_password if user == ADMIN else self.users[user]

    def security(self, user: str = ADMIN, password: str | None = None) -> KafkaSecurity:
        """How a client logs in as ``user`` (``password`` overrides, e.g. a wrong one)."""
        return KafkaSecurity(
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism=MECHANISM,
            username=user,
            password=self.password(user) if password is None else password,
        )

    def format_args(self) -> list[str]:
        """``--add-scram`` arguments of ``StorageTool format``: one per user."""
        every = {ADMIN: self.admin_password, **self.users}
        return [
            arg
            for name, pw in every.items()
            for arg in ("--add-scram", f"{MECHANISM}=[name={name},password={pw}]")
        ]

    def server_properties(self, port: int, controller_port: int) -> dict[str, str]:
        """The listener, SASL and authorizer properties of a one-node KRaft broker."""
        admin_pw = self.admin_password
        plain = "org.apache.kafka.common.security.plain.PlainLoginModule"
        scram = "org.apache.kafka.common.security.scram.ScramLoginModule"
        return {
            "listeners": (
                f"SASL_PLAINTEXT://{LOOPBACK}:{port},CONTROLLER://{LOOPBACK}:{controller_port}"
            ),
            "advertised.listeners": f"SASL_PLAINTEXT://{LOOPBACK}:{port}",
            "inter.broker.listener.name": "SASL_PLAINTEXT",
            "listener.security.protocol.map": (
                "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT"
            ),
            "sasl.enabled.mechanisms": MECHANISM,
            "sasl.mechanism.inter.broker.protocol": MECHANISM,
            "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config": _jaas(
                scram, ADMIN, admin_pw
            ),
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config": _jaas(
                plain, ADMIN, admin_pw, f' user_{ADMIN}="{admin_pw}"'
            ),
            "authorizer.class.name": "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
            "super.users": f"User:{ADMIN}",
            "allow.everyone.if.no.acl.found": "false",
        }

    def write_password_file(self, directory: Path, user: str) -> Path:
        """``user``'s password in a file only its owner reads (for KAFKA_SASL_PASSWORD_FILE)."""
        path = directory / f"{user}.password"
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(self.password(user), encoding="utf-8")
        return path


async def grant_product_acls(bootstrap: str, admin: KafkaSecurity, user: str) -> None:
    """Allow ``user`` what the product does: every topic and group, and on the cluster
    create topics, describe it and its configs, and write idempotently."""
    grants = [
        (_TOPIC, "*", _ALL),
        (_GROUP, "*", _ALL),
        *((_CLUSTER, "kafka-cluster", op) for op in (_CREATE, _DESCRIBE, _DESCRIBE_CONFIGS)),
        (_CLUSTER, "kafka-cluster", _IDEMPOTENT_WRITE),
    ]
    client = AIOKafkaClient(bootstrap_servers=bootstrap, **admin.client_kwargs())
    try:
        await client.bootstrap()
        for resource_type, name, operation in grants:
            request = CreateAclsRequest(
                resource_type, name, _LITERAL, f"User:{user}", "*", operation, _ALLOW
            )
            response = await client.send(client.get_random_node(), request)
            for error_code, message in response.creation_responses:
                if for_code(error_code) is not NoError:
                    raise RuntimeError(f"granting {user} an ACL: {message or error_code}")
    finally:
        await client.close()
