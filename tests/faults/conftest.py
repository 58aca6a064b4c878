"""Fixtures of the fault tests: servers of their own, which the tests kill and restart.

The session's shared servers (tests/integration) must stay up for everyone else, so
each fault test that kills a server starts a private one through the devstack
(``Service.kill`` / ``resume`` / ``restart`` restart it in place: same data directory,
same port). Every test here is marked ``faults`` (and ``integration``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.devstack import ApacheKafkaServer, KafkaCluster, PostgresServer, S3Server
from tests.server_fixtures import server_fixture

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.faults)
            item.add_marker(pytest.mark.integration)


own_kafka = server_fixture(
    lambda: ApacheKafkaServer(heap="384m"),
    "A single-node Apache Kafka of this test's own (killable).",
)
own_postgres = server_fixture(
    PostgresServer, "A PostgreSQL of this test's own (restartable in place)."
)
own_s3 = server_fixture(S3Server, "A SeaweedFS S3 of this test's own (killable).")
kafka_cluster = server_fixture(
    lambda: KafkaCluster(brokers=3),
    "A 3-node Apache Kafka KRaft cluster of this test's own (3-voter quorum).",
)
steady_kafka = server_fixture(
    lambda: ApacheKafkaServer(heap="384m"),
    "A broker of the fault suite that no test kills (for PostgreSQL and S3 faults).",
    scope="session",
)
