"""The event log's configuration and partitioning, without a broker."""

from __future__ import annotations

import pytest

from orchestrator.events._produce import KeyPartitioner, check_sizes
from orchestrator.events.errors import LogError
from orchestrator.events.log import ProducerSettings
from orchestrator.events.topics import (
    DEFAULT_PIPELINE_TOPIC,
    DEFAULT_SHARED_TOPIC,
    FOREVER,
    TopicMismatch,
    TopicsConfig,
    TopicSpec,
    dlq_name,
)


def test_default_topics_and_their_dead_letter_companions() -> None:
    config = TopicsConfig()
    names = [spec.name for spec in config.specs()]
    assert names == [
        DEFAULT_PIPELINE_TOPIC,
        dlq_name(DEFAULT_PIPELINE_TOPIC),
        DEFAULT_SHARED_TOPIC,
        dlq_name(DEFAULT_SHARED_TOPIC),
    ]
    assert dlq_name("orchestrator.pipeline.events") == "orchestrator.pipeline.events.dlq"
    assert all(spec.retention_ms == FOREVER for spec in config.specs())


def test_events_are_routed_by_type() -> None:
    config = TopicsConfig().with_prefix("x.")
    assert config.topic_for("SharedVariableSet") == "x." + DEFAULT_SHARED_TOPIC
    assert config.topic_for("SharedVariableDeleted") == "x." + DEFAULT_SHARED_TOPIC
    assert config.topic_for("TaskCompleted") == "x." + DEFAULT_PIPELINE_TOPIC
    assert config.topic_for("ExecutionOwnershipTaken") == "x." + DEFAULT_PIPELINE_TOPIC


def test_topic_configs_set_only_what_is_declared() -> None:
    spec = TopicSpec(name="t", retention_ms=None, configs={"cleanup.policy": "delete"})
    assert spec.topic_configs() == {"cleanup.policy": "delete"}
    spec = TopicSpec(name="t", retention_ms=FOREVER, min_insync_replicas=2)
    assert spec.topic_configs() == {"retention.ms": "-1", "min.insync.replicas": "2"}
    with pytest.raises(ValueError, match="partitions"):
        TopicSpec(name="t", partitions=0)


def test_topic_mismatch_names_topic_setting_expected_and_actual() -> None:
    error = TopicMismatch("orders", "partitions", 12, 6)
    assert str(error) == "topic 'orders': partitions is 6, expected 12"
    assert isinstance(error, LogError) and not error.retriable


def test_producer_settings_refuse_idempotence_without_acks_all() -> None:
    with pytest.raises(ValueError, match="acks"):
        ProducerSettings(acks=1)
    assert ProducerSettings(acks=1, enable_idempotence=False).acks == 1


@pytest.mark.parametrize(
    ("key", "java_murmur2"),
    # Kafka's UtilsTest.testMurmur2 values (signed 32-bit).
    [(b"21", -973932308), (b"foobar", -790332482), (b"abc", 479470107)],
)
def test_key_partitioner_matches_the_java_default_partitioner(
    key: bytes, java_murmur2: int
) -> None:
    partitioner = KeyPartitioner()
    for partitions in (1, 3, 12, 50):
        expected = (java_murmur2 & 0x7FFFFFFF) % partitions
        assert partitioner(key, partitions) == expected
        assert partitioner(key, partitions) == expected  # cached


def test_oversized_records_are_refused_before_sending() -> None:
    check_sizes([("t", b"k", b"x" * 1000)], max_request_size=2000)
    with pytest.raises(LogError, match="record 1 for t") as caught:
        check_sizes([("t", b"k", b"x"), ("t", b"k", b"x" * 5000)], max_request_size=2000)
    assert not caught.value.retriable


def test_producer_settings_refuse_fewer_than_one_producer() -> None:
    with pytest.raises(ValueError, match="producers must be >= 1, got 0"):
        ProducerSettings(producers=0)
    assert ProducerSettings().producers == 2
