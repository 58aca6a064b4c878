"""Fixtures of the fault tests: servers of their own, which the tests kill and restart.

The session's shared servers (tests/integration) must stay up for everyone else, so
each fault test that kills a server starts a private one through the devstack
(``Service.kill`` / ``resume`` / ``restart`` restart it in place: same data directory,
same port). Every test here is marked ``faults`` (and ``integration``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from orchestrator.devstack import ApacheKafkaServer, KafkaCluster, PostgresServer, S3Server

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.faults)
            item.add_marker(pytest.mark.integration)


@pytest.fixture
async def own_kafka() -> AsyncIterator[ApacheKafkaServer]:
    """A single-node Apache Kafka of this test's own (killable)."""
    async with ApacheKafkaServer(heap="384m") as server:
        yield server


@pytest.fixture
async def own_postgres() -> AsyncIterator[PostgresServer]:
    """A PostgreSQL of this test's own (restartable in place)."""
    async with PostgresServer() as server:
        yield server


@pytest.fixture
async def own_s3() -> AsyncIterator[S3Server]:
    """A SeaweedFS S3 of this test's own (killable)."""
    async with S3Server() as server:
        yield server


@pytest.fixture
async def kafka_cluster() -> AsyncIterator[KafkaCluster]:
    """A 3-node Apache Kafka KRaft cluster of this test's own (3-voter quorum)."""
    async with KafkaCluster(brokers=3) as cluster:
        yield cluster


@pytest.fixture(scope="session")
async def steady_kafka() -> AsyncIterator[ApacheKafkaServer]:
    """A broker of the fault suite that no test kills (for PostgreSQL and S3 faults)."""
    async with ApacheKafkaServer(heap="384m") as server:
        yield server
