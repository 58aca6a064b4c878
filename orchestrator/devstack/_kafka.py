"""What every local Kafka-protocol broker offers, and the admin calls the harness needs.

Two brokers implement `KafkaServer`: Apache Kafka from its jars (the real thing,
used by tests) and Tansu (no Java needed, but no idempotence or transactions).
Code that needs exactly-once producing checks `supports_idempotence` rather than
the class.
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from typing import ClassVar

from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

from orchestrator.events import PLAINTEXT, KafkaSecurity

from ._ports import LOOPBACK, port_accepts
from ._service import Service

#: Topic the readiness check writes to; created with one partition.
READY_TOPIC = "__devstack_ready"


class KafkaServer(Service):
    """A Kafka-protocol broker on loopback."""

    name: ClassVar[str] = "kafka"
    #: Whether idempotent and transactional producers work on this broker.
    supports_idempotence: ClassVar[bool]

    @property
    @abc.abstractmethod
    def version(self) -> str:
        """The broker's version, e.g. "4.1.1"."""

    @property
    @abc.abstractmethod
    def description(self) -> str:
        """What this broker is, for logs and test headers, e.g. "Apache Kafka 4.1.1 (jars)"."""

    @property
    def client_security(self) -> KafkaSecurity:
        """How a client with every right logs in (plain text unless the broker is secured)."""
        return PLAINTEXT

    @property
    def bootstrap_servers(self) -> str:
        return self._address()

    async def _probe(self) -> None:
        if self._port is None or not await port_accepts(LOOPBACK, self._port):
            raise ConnectionError(f"nothing accepts connections on port {self._port} yet")
        security = self.client_security
        await create_topic(self.bootstrap_servers, READY_TOPIC, exist_ok=True, security=security)
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap_servers,
            enable_idempotence=self.supports_idempotence,
            acks="all",
            request_timeout_ms=5000,
            **security.client_kwargs(),
        )
        await producer.start()
        try:
            await producer.send_and_wait(READY_TOPIC, b"ready")
        finally:
            await producer.stop()


async def create_topic(
    bootstrap_servers: str,
    name: str,
    *,
    partitions: int = 1,
    replication_factor: int = 1,
    config: Mapping[str, str] | None = None,
    exist_ok: bool = False,
    security: KafkaSecurity = PLAINTEXT,
) -> None:
    """Create a topic and raise the broker's error if it refused (aiokafka only returns it)."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers, request_timeout_ms=10000, **security.client_kwargs()
    )
    await admin.start()
    try:
        topic = NewTopic(name, partitions, replication_factor, topic_configs=dict(config or {}))
        response = await admin.create_topics([topic])
    finally:
        await admin.close()
    for _topic, error_code, *rest in response.topic_errors:
        if error_code == 0:
            continue
        error = for_code(error_code)
        if exist_ok and error is TopicAlreadyExistsError:
            continue
        message = rest[0] if rest and rest[0] else error.description
        raise error(f"creating topic {name!r}: {message}")
