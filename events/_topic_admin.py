"""The admin calls behind ``events.topics``: describe, create, wait for leaders.

Only this module (with ``_kafka``) talks to aiokafka's admin client; every call runs
inside ``translated`` so a failure is a ``LogError`` naming what was being done, and
opening the client has a deadline (an unreachable address fails, it does not hang).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import KafkaError, NoError, TopicAlreadyExistsError, for_code

from orchestrator.events._kafka import explained, translated
from orchestrator.events.errors import KafkaUnreachable, LogError
from orchestrator.events.security import PLAINTEXT, KafkaSecurity

logger = logging.getLogger(__name__)

TOPIC_CONFIG_KEYS = ("retention.ms", "retention.bytes", "min.insync.replicas")


@contextlib.asynccontextmanager
async def admin_client(
    bootstrap_servers: str,
    *,
    client_id: str,
    request_timeout_ms: int,
    connect_timeout_ms: int | None = None,
    security: KafkaSecurity = PLAINTEXT,
) -> AsyncIterator[Any]:
    """A started admin client; connecting fails within ``connect_timeout_ms`` (default:
    ``request_timeout_ms``) with ``KafkaUnreachable``."""
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap_servers,
        client_id=client_id,
        request_timeout_ms=request_timeout_ms,
        **security.client_kwargs(),
    )
    try:
        try:
            await asyncio.wait_for(admin.start(), (connect_timeout_ms or request_timeout_ms) / 1000)
        except TimeoutError as exc:
            raise KafkaUnreachable(bootstrap_servers, "no answer within the deadline") from exc
        except (KafkaError, OSError) as exc:
            reason = str(exc).strip() or type(exc).__name__
            unreachable = KafkaUnreachable(bootstrap_servers, reason)
            better = await explained(unreachable, bootstrap_servers, security)
            raise better from exc
        yield admin
    finally:
        await admin.close()


async def count_brokers(admin: Any) -> int:
    with translated("describing the cluster"):
        return len((await admin.describe_cluster())["brokers"])


async def describe_all(admin: Any) -> dict[str, dict[str, Any]]:
    """Every topic of the cluster by name (a request for all: never auto-creates)."""
    with translated("listing topics"):
        topics = await admin.describe_topics()
    return {t["topic"]: t for t in topics if t["error_code"] == 0}


async def describe_configs(admin: Any, topic: str, keys: Sequence[str]) -> dict[str, str]:
    """The topic's values of ``keys``; empty where the broker cannot tell (Tansu)."""
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


async def create(
    admin: Any,
    topics: Sequence[tuple[str, int, int, Mapping[str, str]]],
    timeout_ms: int,
) -> list[str]:
    """Create ``(name, partitions, replication, configs)``; return the names created
    (one that already exists was made concurrently by someone else: not an error)."""
    if not topics:
        return []
    new = [NewTopic(n, p, r, topic_configs=dict(c)) for n, p, r, c in topics]
    with translated("creating topics " + ", ".join(t[0] for t in topics)):
        response = await admin.create_topics(new, timeout_ms=timeout_ms)
    created: list[str] = []
    for topic, code, message, *_ in response.topic_errors:
        error_type = for_code(code)
        if error_type is NoError:
            created.append(topic)
            logger.info("created topic %s", topic)
        elif error_type is not TopicAlreadyExistsError:
            raise LogError(
                f"cannot create topic {topic!r}: {error_type.__name__}: {message}",
                retriable=bool(error_type.retriable),
            )
    return created


async def wait_for_leaders(admin: Any, topics: Sequence[str], timeout_ms: int) -> None:
    """Wait until every new partition has a leader, so the first append does not fail."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_ms / 1000
    while True:
        described = await describe_all(admin)
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
