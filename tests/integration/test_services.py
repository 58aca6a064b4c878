"""The harness's services do what the product relies on.

Kafka: an idempotent acks=all producer and a transactional producer really work
(read_committed sees committed records and not aborted ones). PostgreSQL answers
asyncpg. S3 stores and returns an object in the bucket.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from orchestrator.devstack import KafkaEndpoint, S3Endpoint, ServiceEndpoints

MakeTopic = Callable[..., Awaitable[str]]


async def _read_all(
    bootstrap: str, topic: str, *, isolation_level: str = "read_uncommitted"
) -> list[bytes]:
    """Every record of a one-partition topic, read from the start up to its end."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        isolation_level=isolation_level,
    )
    await consumer.start()
    try:
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        end = (await consumer.end_offsets([tp]))[tp]  # the last stable offset when read_committed
        values: list[bytes] = []
        while await consumer.position(tp) < end:
            batch = await consumer.getmany(tp, timeout_ms=1000)
            values.extend(record.value for record in batch.get(tp, []) if record.value is not None)
        return values
    finally:
        await consumer.stop()


async def test_idempotent_producer_with_acks_all_round_trips(
    kafka: KafkaEndpoint, make_topic: MakeTopic, require_idempotence: None
) -> None:
    topic = await make_topic(partitions=1)
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap_servers, enable_idempotence=True, acks="all"
    )
    await producer.start()
    try:
        sent = [f"event-{i}".encode() for i in range(20)]
        results = await asyncio.gather(*[await producer.send(topic, value) for value in sent])
    finally:
        await producer.stop()
    assert [r.offset for r in results] == list(range(20))
    assert await _read_all(kafka.bootstrap_servers, topic) == sent


async def test_transactions_commit_and_abort_for_read_committed(
    kafka: KafkaEndpoint, make_topic: MakeTopic, require_idempotence: None
) -> None:
    topic = await make_topic(partitions=1)
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.bootstrap_servers,
        transactional_id=f"test-tx-{uuid.uuid4().hex}",
    )
    await producer.start()
    try:
        async with producer.transaction():
            await producer.send_and_wait(topic, b"committed-1")
            await producer.send_and_wait(topic, b"committed-2")
        await producer.begin_transaction()
        await producer.send_and_wait(topic, b"aborted")
        await producer.abort_transaction()
        async with producer.transaction():
            await producer.send_and_wait(topic, b"committed-3")
    finally:
        await producer.stop()
    committed = await _read_all(kafka.bootstrap_servers, topic, isolation_level="read_committed")
    assert committed == [b"committed-1", b"committed-2", b"committed-3"]
    everything = await _read_all(kafka.bootstrap_servers, topic)
    assert b"aborted" in everything


async def test_plain_produce_and_consume_works_on_any_broker(
    kafka: KafkaEndpoint, make_topic: MakeTopic
) -> None:
    topic = await make_topic(partitions=1)
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"hello", key=b"k")
    finally:
        await producer.stop()
    assert await _read_all(kafka.bootstrap_servers, topic) == [b"hello"]


async def test_make_topic_creates_the_partitions_asked_for(
    kafka: KafkaEndpoint, make_topic: MakeTopic
) -> None:
    topic = await make_topic(partitions=3)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.bootstrap_servers)
    await admin.start()
    try:
        [described] = await admin.describe_topics([topic])
    finally:
        await admin.close()
    assert described["topic"] == topic
    assert sorted(p["partition"] for p in described["partitions"]) == [0, 1, 2]


async def test_postgres_answers_asyncpg(postgres: str) -> None:
    conn = await asyncpg.connect(postgres)
    try:
        assert await conn.fetchval("SELECT 40 + 2") == 42
        assert (await conn.fetchval("SHOW server_version")).split(".")[0].isdigit()
    finally:
        await conn.close()


async def test_s3_puts_and_gets_an_object_in_the_bucket(s3: S3Endpoint) -> None:
    key = f"tests/{uuid.uuid4().hex}.bin"
    body = b"\x00snapshot\xff" * 100

    def round_trip() -> bytes:
        client = s3.client()
        client.put_object(Bucket=s3.bucket, Key=key, Body=body)
        data: bytes = client.get_object(Bucket=s3.bucket, Key=key)["Body"].read()
        client.delete_object(Bucket=s3.bucket, Key=key)
        return data

    assert await asyncio.to_thread(round_trip) == body


def test_services_export_what_reaches_them(services: ServiceEndpoints) -> None:
    env = services.as_env()
    assert env["KAFKA_BOOTSTRAP_SERVERS"] == services.kafka_bootstrap
    assert env["DATABASE_URL"] == services.database_url
    assert env["S3_ENDPOINT_URL"] == services.s3_endpoint_url
    assert env["S3_BUCKET"] == services.s3_bucket
    assert {"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"} <= env.keys()


@pytest.mark.requires_idempotence
def test_the_marker_runs_only_where_idempotence_works(kafka: KafkaEndpoint) -> None:
    assert kafka.supports_idempotence
