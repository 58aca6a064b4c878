"""How long Kafka may still hold a record: what blob retention waits out.

A record leaves a topic with its segment: at most ``segment.ms`` after it was appended
(the segment rolls), plus ``retention.ms`` (the closed segment expires).
"""

from __future__ import annotations

from collections.abc import Iterable

from orchestrator.events import _topic_admin as _admin
from orchestrator.events.security import PLAINTEXT, KafkaSecurity
from orchestrator.events.topics import TopicsConfig, dlq_name


def user_data_topics(topics: TopicsConfig) -> list[str]:
    """Every topic whose records may name a blob: events, shared events, their DLQs,
    and the task-events feed when configured."""
    names = [topics.pipeline.name, topics.shared.name]
    names += [dlq_name(n) for n in names]
    if topics.tasks is not None:
        names.append(topics.tasks.name)
    return names


def _int(value: str | None) -> int | None:
    try:
        return None if value is None else int(value)
    except ValueError:
        return None


async def record_lifetime_ms(
    bootstrap_servers: str,
    topics: Iterable[str],
    *,
    security: KafkaSecurity = PLAINTEXT,
    request_timeout_ms: int = 30_000,
) -> int | None:
    """The longest a record may stay in any of ``topics``: ``retention.ms`` plus
    ``segment.ms`` (a record is deleted with its segment, which may stay open that long).

    ``None`` when any topic keeps records forever (``retention.ms`` -1), or a value is
    unknown (the topic is missing, or the broker does not describe configs)."""
    longest = 0
    async with _admin.admin_client(
        bootstrap_servers,
        client_id="orchestrator-state-retention",
        request_timeout_ms=request_timeout_ms,
        security=security,
    ) as admin:
        for topic in sorted(set(topics)):
            configs = await _admin.describe_configs(admin, topic, ("retention.ms", "segment.ms"))
            retention, segment = _int(configs.get("retention.ms")), _int(configs.get("segment.ms"))
            if retention is None or segment is None or retention < 0:
                return None
            longest = max(longest, retention + segment)
    return longest
