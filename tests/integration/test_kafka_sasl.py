"""Authenticated producers: a broker that wants SASL/SCRAM and ACLs takes our clients
with the right credentials and refuses the others with one clear line.

The broker is the test's own (`sasl_kafka`), started by the devstack with SCRAM users
created at format time; the session's plain broker is not touched.
"""

from __future__ import annotations

import asyncio
import os
import random
import subprocess
import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiokafka
import pytest
from _connect_support import write_config
from _databases import MakeDatabase
from _projector_support import CLI, compare_with_fold, running_worker, settings_for, wait_until

import orchestrator
from orchestrator import Pipeline
from orchestrator.devstack import DevStack
from orchestrator.events import KafkaSecurity, LogError
from orchestrator.events.codec import default_codec
from orchestrator.events.log import EventLog, ProducerSettings
from orchestrator.events.simulate import simulate_execution
from orchestrator.events.topics import TopicsConfig, TopicSpec, ensure_topics
from orchestrator.projections.processor import Projector, prepare

pytestmark = pytest.mark.integration

DEADLINE_S = 60.0


def _topics() -> TopicsConfig:
    base = TopicsConfig(
        pipeline=TopicSpec(name="orchestrator.pipeline.events", partitions=2),
        shared=TopicSpec(name="orchestrator.shared.events", partitions=1),
    )
    return base.with_prefix(f"test-{uuid.uuid4().hex[:10]}.")


def _history(execution_id: str) -> list:  # type: ignore[type-arg]
    rng = random.Random(7)
    return [
        replace(e, event_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)))
        for e in simulate_execution(execution_id, rng, tasks=3)
    ]


def _log(bootstrap: str, topics: TopicsConfig, security: KafkaSecurity) -> EventLog:
    settings = ProducerSettings(security=security, delivery_timeout_ms=10_000)
    return EventLog(bootstrap, default_codec(), settings, topics=topics)


async def test_an_authenticated_producer_appends_and_the_processor_reads_it(
    sasl_kafka: DevStack, make_database: MakeDatabase
) -> None:
    ep = sasl_kafka.endpoints
    bootstrap, security = ep.kafka.bootstrap_servers, ep.kafka_security
    assert security.username == "app" and security.sasl_mechanism == "SCRAM-SHA-512"
    topics = _topics()
    projection = settings_for(topics)
    dsn = await make_database(migrated=False)
    await prepare(projection, dsn, bootstrap, topics, security=security)
    events = _history(f"sasl-{uuid.uuid4().hex[:6]}")
    async with _log(bootstrap, topics, security) as log:
        positions = await log.append_batch(events)
    assert len(positions) == len(events)
    projector = Projector(projection, dsn, bootstrap, security=security)
    async with running_worker(projector):

        async def applied() -> bool:
            return not await compare_with_fold(dsn, {events[0].execution_id: events}, projection)

        await wait_until(applied, DEADLINE_S, "the processor to fold the secured topic")


async def test_a_producer_without_credentials_is_refused(sasl_kafka: DevStack) -> None:
    bootstrap = sasl_kafka.endpoints.kafka.bootstrap_servers
    topics = _topics()
    with pytest.raises(LogError) as caught:
        async with asyncio.timeout(DEADLINE_S):
            async with _log(bootstrap, topics, KafkaSecurity()) as log:
                await log.append_batch(_history("no-credentials"))
    message = str(caught.value)
    print("no credentials:", message)
    assert "\n" not in message
    assert "SASL" in message and not caught.value.retriable
    # and the plain aiokafka client, as any other unauthenticated producer would be
    producer = aiokafka.AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    with pytest.raises(Exception) as plain:  # aiokafka's own error type
        async with asyncio.timeout(DEADLINE_S):
            await producer.start()
            await producer.send_and_wait(topics.pipeline.name, b"x")
    await producer.stop()
    print("plain aiokafka:", type(plain.value).__name__, plain.value)


async def test_a_wrong_password_is_refused_naming_the_authentication(
    sasl_kafka: DevStack,
) -> None:
    ep = sasl_kafka.endpoints
    wrong = replace(ep.kafka_security, password="not-the-password")
    with pytest.raises(LogError) as caught:
        async with asyncio.timeout(DEADLINE_S):
            async with _log(ep.kafka.bootstrap_servers, _topics(), wrong) as log:
                await log.append_batch(_history("wrong-password"))
    message = str(caught.value)
    print("wrong password:", message)
    assert "\n" not in message
    assert "authentication failed" in message.lower()
    assert "not-the-password" not in message


async def test_a_user_without_an_acl_is_refused(sasl_kafka: DevStack) -> None:
    ep = sasl_kafka.endpoints
    bootstrap, app = ep.kafka.bootstrap_servers, ep.kafka_security
    topics = _topics()
    await ensure_topics(bootstrap, topics.specs(), security=app)
    assert sasl_kafka.scram is not None
    guest = sasl_kafka.scram.security("guest")
    with pytest.raises(LogError) as caught:
        async with asyncio.timeout(DEADLINE_S):
            async with _log(bootstrap, topics, guest) as log:
                await log.append_batch(_history("no-acl"))
    message = str(caught.value)
    print("no ACL:", message)
    assert "\n" not in message
    assert "authoriz" in message.lower() and "guest" in message
    # without idempotence, the append itself is refused on the topic
    plain = ProducerSettings(security=guest, enable_idempotence=False, delivery_timeout_ms=10_000)
    with pytest.raises(LogError) as refused:
        async with asyncio.timeout(DEADLINE_S):
            async with EventLog(bootstrap, default_codec(), plain, topics=topics) as log:
                await log.append_batch(_history("no-acl"))
    print("no ACL, append:", refused.value)
    assert "\n" not in str(refused.value)
    assert "authoriz" in str(refused.value).lower()


def _secured_config(tmp_path: Path, prefix: str) -> Path:
    """The non-secret half in YAML; the password comes from the environment."""
    security = (
        "    kafka_security:\n"
        "      security_protocol: SASL_PLAINTEXT\n"
        "      sasl_mechanism: SCRAM-SHA-512\n"
        "      sasl_username: app\n"
    )
    return write_config(tmp_path, prefix, event_store=security)


async def test_connect_runs_a_pipeline_on_the_secured_broker(
    sasl_kafka: DevStack, make_database: MakeDatabase, tmp_path: Path
) -> None:
    ep = sasl_kafka.endpoints
    assert ep.kafka_password_file is not None
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": ep.kafka.bootstrap_servers,
        "KAFKA_SASL_PASSWORD_FILE": ep.kafka_password_file,
        "DATABASE_URL": await make_database(migrated=False),
    }
    pipeline = Pipeline(f"sasl-{uuid.uuid4().hex[:8]}")

    @pipeline.task()
    async def double(context: Any) -> int:
        return 21 * 2

    config = _secured_config(tmp_path, f"test-{uuid.uuid4().hex[:10]}")
    async with orchestrator.connect(config=config, environ=env) as state:
        result = await state.run(pipeline, {})
    assert (result.status, result.result) == ("completed", 42)


def test_the_cli_logs_in_from_env_and_names_a_missing_login(
    sasl_kafka: DevStack, tmp_path: Path
) -> None:
    ep = sasl_kafka.endpoints
    config = _secured_config(tmp_path, f"test-{uuid.uuid4().hex[:10]}")
    base = {k: v for k, v in os.environ.items() if not k.startswith("KAFKA_")}
    ensure = [*CLI, "topics", "ensure", "--config", str(config)]
    env = {**base, **ep.as_env()}
    done = subprocess.run(ensure, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    plain = [*CLI, "topics", "describe", "--bootstrap-servers", ep.kafka.bootstrap_servers]
    refused = subprocess.run(plain, env=base, capture_output=True, text=True, timeout=120)
    print("cli without login:", refused.stderr)
    assert refused.returncode != 0
    assert "SASL" in refused.stderr and "Traceback" not in refused.stderr
