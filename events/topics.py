"""The topics the event log lives in, and making sure the broker has them as declared.

Topic layout is part of correctness, not tuning: an execution's events are totally
ordered only because its key always hashes to the same partition, and that holds only
while the partition count stays what it was. So :func:`ensure_topics` creates what is
missing and *refuses* (``TopicMismatch``) an existing topic whose partition count,
replication or declared configs differ, instead of silently running on it.

Listing uses a metadata request for *all* topics: asking for named topics would make a
broker with ``auto.create.topics.enable`` create them with its own defaults.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, NoError, TopicAlreadyExistsError, for_code

from orchestrator.events._kafka import translated
from orchestrator.events.catalogue import SHARED_EVENT_TYPES
from orchestrator.events.errors import LogError

logger = logging.getLogger(__name__)

DEFAULT_PIPELINE_TOPIC = "orchestrator.pipeline.events"
DEFAULT_SHARED_TOPIC = "orchestrator.shared.events"
FOREVER = -1
"""``retention_ms`` that keeps records forever."""


def dlq_name(topic: str) -> str:
    """The dead-letter companion of ``topic``."""
    return topic + ".dlq"


class TopicMismatch(LogError):
    """A topic exists (or would be created) with a setting other than the declared one.

    Not retriable: an operator has to change the topic or the configuration.
    """

    def __init__(self, topic: str, setting: str, expected: object, actual: object) -> None:
        self.topic = topic
        self.setting = setting
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"topic {topic!r}: {setting} is {actual}, expected {expected}",
            retriable=False,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class TopicSpec:
    """One topic as declared in configuration.

    ``replication_factor=None`` means min(3, brokers in the cluster), so one
    declaration serves a one-broker dev stack and a three-broker cluster.
    ``retention_ms=None`` leaves the broker default; ``FOREVER`` (-1) keeps everything.
    ``min_insync_replicas=None`` leaves the broker default.
    """

    name: str
    partitions: int = 12
    replication_factor: int | None = None
    retention_ms: int | None = FOREVER
    min_insync_replicas: int | None = None
    configs: Mapping[str, str] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        if self.partitions < 1:
            raise ValueError(f"topic {self.name!r}: partitions must be >= 1")
        if self.replication_factor is not None and self.replication_factor < 1:
            raise ValueError(f"topic {self.name!r}: replication_factor must be >= 1")

    def topic_configs(self) -> dict[str, str]:
        """The topic-level configs this spec sets explicitly (and so verifies)."""
        out = dict(self.configs)
        if self.retention_ms is not None:
            out["retention.ms"] = str(self.retention_ms)
        if self.min_insync_replicas is not None:
            out["min.insync.replicas"] = str(self.min_insync_replicas)
        return out


@dataclass(frozen=True, slots=True, kw_only=True)
class TopicsConfig:
    """The pipeline and shared-state topics, each with a ``.dlq`` companion."""

    pipeline: TopicSpec = field(default_factory=lambda: TopicSpec(name=DEFAULT_PIPELINE_TOPIC))
    shared: TopicSpec = field(
        default_factory=lambda: TopicSpec(name=DEFAULT_SHARED_TOPIC, partitions=3)
    )
    dlq_partitions: int = 1

    def with_prefix(self, prefix: str) -> TopicsConfig:
        """The same layout under prefixed names (tests, or several stacks on one cluster)."""
        return replace(
            self,
            pipeline=replace(self.pipeline, name=prefix + self.pipeline.name),
            shared=replace(self.shared, name=prefix + self.shared.name),
        )

    def dlq(self, spec: TopicSpec) -> TopicSpec:
        """The dead-letter topic of ``spec``: same replication, kept forever."""
        return replace(
            spec,
            name=dlq_name(spec.name),
            partitions=self.dlq_partitions,
            retention_ms=FOREVER,
        )

    def specs(self) -> tuple[TopicSpec, ...]:
        """Every topic the system needs: the two event topics and their DLQs."""
        return (self.pipeline, self.dlq(self.pipeline), self.shared, self.dlq(self.shared))

    def topic_for(self, event_type: str) -> str:
        """Where an event of this type goes: shared-state events to the shared topic."""
        return self.shared.name if event_type in SHARED_EVENT_TYPES else self.pipeline.name


async def ensure_topics(
    bootstrap_servers: str,
    specs: Iterable[TopicSpec],
    *,
    client_id: str = "orchestrator-state-admin",
    request_timeout_ms: int = 30_000,
) -> list[str]:
    """Create the missing topics and verify the existing ones; return the names created.

    Raises ``TopicMismatch`` for a partition count, replication factor or declared
    config that differs from the spec, or a replication factor larger than the number
    of brokers; ``LogError`` for anything else the broker refuses.
    """
    wanted = list(specs)
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        request_timeout_ms=request_timeout_ms,
    )
    with translated(f"connecting to Kafka at {bootstrap_servers}"):
        await admin.start()
    try:
        with translated("describing the cluster"):
            brokers = len((await admin.describe_cluster())["brokers"])
        resolved = [_resolve_replication(spec, brokers) for spec in wanted]
        existing = await _describe_all(admin)
        missing = [spec for spec in resolved if spec.name not in existing]
        created = await _create(admin, missing, request_timeout_ms)
        for spec in resolved:
            if spec.name not in created:
                await _verify(admin, spec, existing.get(spec.name))
        if created:
            await _wait_for_leaders(admin, created, request_timeout_ms)
        return created
    finally:
        await admin.close()


def _resolve_replication(spec: TopicSpec, brokers: int) -> TopicSpec:
    if spec.replication_factor is None:
        return replace(spec, replication_factor=min(3, brokers))
    if spec.replication_factor > brokers:
        # Some brokers (Tansu) accept any factor and ignore it: check here, for all.
        raise TopicMismatch(
            spec.name,
            "replication_factor",
            f"at most {brokers} (the number of brokers in the cluster)",
            spec.replication_factor,
        )
    return spec


async def _describe_all(admin: Any) -> dict[str, dict[str, Any]]:
    with translated("listing topics"):
        topics = await admin.describe_topics()  # no names: never auto-creates
    return {t["topic"]: t for t in topics if t["error_code"] == 0}


async def _create(admin: Any, specs: Sequence[TopicSpec], timeout_ms: int) -> list[str]:
    if not specs:
        return []
    new = [
        NewTopic(s.name, s.partitions, s.replication_factor, topic_configs=s.topic_configs())
        for s in specs
    ]
    with translated("creating topics " + ", ".join(s.name for s in specs)):
        response = await admin.create_topics(new, timeout_ms=timeout_ms)
    created: list[str] = []
    for topic, code, message, *_ in response.topic_errors:
        error_type = for_code(code)
        if error_type is NoError:
            created.append(topic)
            logger.info("created topic %s", topic)
        elif error_type is not TopicAlreadyExistsError:  # lost a race: verified below
            raise LogError(
                f"cannot create topic {topic!r}: {error_type.__name__}: {message}",
                retriable=bool(error_type.retriable),
            )
    return created


async def _verify(admin: Any, spec: TopicSpec, described: dict[str, Any] | None) -> None:
    if described is None:  # created concurrently by someone else
        described = (await _describe_all(admin)).get(spec.name)
        if described is None:
            raise LogError(f"topic {spec.name!r} neither created nor found", retriable=True)
    partitions = described["partitions"]
    if len(partitions) != spec.partitions:
        raise TopicMismatch(spec.name, "partitions", spec.partitions, len(partitions))
    replicas = min(len(p["replicas"]) for p in partitions)
    if replicas != spec.replication_factor:
        raise TopicMismatch(spec.name, "replication_factor", spec.replication_factor, replicas)
    declared = spec.topic_configs()
    if not declared:
        return
    actual = await _describe_configs(admin, spec.name, declared)
    for key, value in declared.items():
        if key in actual and actual[key] != value:
            raise TopicMismatch(spec.name, key, value, actual[key])


async def _describe_configs(admin: Any, topic: str, keys: Mapping[str, str]) -> dict[str, str]:
    resource = ConfigResource(ConfigResourceType.TOPIC, topic, dict.fromkeys(keys))
    try:
        responses = await admin.describe_configs([resource])
    except KafkaError as exc:
        # Tansu closes the connection on DescribeConfigs: verify what we can.
        logger.warning("cannot describe configs of topic %s (%s): not verified", topic, exc)
        return {}
    out: dict[str, str] = {}
    for response in responses:
        for error_code, error_message, _type, _name, entries, *_ in response.resources:
            if error_code:
                logger.warning(
                    "cannot describe configs of topic %s: %s %s",
                    topic,
                    for_code(error_code).__name__,
                    error_message,
                )
                continue
            for name, value, *_ in entries:
                out[name] = value
    return out


async def _wait_for_leaders(admin: Any, topics: Sequence[str], timeout_ms: int) -> None:
    """Wait until every new partition has a leader, so the first append does not fail."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_ms / 1000
    while True:
        described = await _describe_all(admin)
        if all(
            t in described and all(p["leader"] >= 0 for p in described[t]["partitions"])
            for t in topics
        ):
            return
        if loop.time() > deadline:
            raise LogError(
                f"topics {list(topics)} have no leader after {timeout_ms} ms", retriable=True
            )
        await asyncio.sleep(0.05)
