"""The topics a configuration implies, and creating or verifying them on start.

:func:`topics_from` maps ``state_management.event_store`` and
``distributed.synchronization.replication`` to a ``TopicsConfig`` (the two event
topics and their ``.dlq`` companions); ``events.topics.effective_spec`` then fills in
what is left unset for the cluster at hand (replication ``min(3, brokers)``,
``min.insync.replicas`` ``min(2, replication)``). The app, ``project``,
``snapshots run``, ``topics ensure`` and ``orchestrator.connect`` all call
:func:`ensure_configured_topics`, so every path creates the same topics.
"""

from __future__ import annotations

from dataclasses import replace

from orchestrator.config import Settings, parse_size
from orchestrator.events import (
    FOREVER,
    PLAINTEXT,
    KafkaSecurity,
    TopicReport,
    TopicsConfig,
    TopicSpec,
    describe_topics,
    ensure_topics_report,
)


def topics_from(
    settings: Settings,
    *,
    max_replication: int | None = None,
    notes: list[str] | None = None,
    pipeline_topic: str | None = None,
    shared_topic: str | None = None,
) -> TopicsConfig:
    """The topics ``settings`` implies (names overridable, as the CLI's flags do).

    ``max_replication`` caps a declared replication (a one-broker dev stack running a
    production file); each cap is explained in ``notes``.
    """
    notes = [] if notes is None else notes
    es = settings.state_management.event_store
    rep = settings.distributed.synchronization.replication
    factor, min_isr = rep.factor, rep.min_replicas
    if max_replication is not None and factor is not None and factor > max_replication:
        notes.append(
            f"distributed.synchronization.replication.factor {factor} capped at "
            f"{max_replication} (brokers available here)"
        )
        factor = max_replication
    if min_isr is not None and factor is not None and min_isr > factor:
        notes.append(
            f"replication.min_replicas {min_isr} > factor {factor}: min.insync.replicas "
            f"set to {factor}, or no write could ever be acknowledged"
        )
        min_isr = factor
    retention_ms = FOREVER if es.retention.days is None else int(es.retention.days * 86_400_000)
    configs = {}
    if es.retention.size is not None:
        configs["retention.bytes"] = str(parse_size(es.retention.size) // es.partitions)
    pipeline = TopicSpec(
        name=pipeline_topic or es.topics.pipeline_events,
        partitions=es.partitions,
        replication_factor=factor,
        min_insync_replicas=min_isr,
        retention_ms=retention_ms,
        configs=configs,
    )
    shared = TopicSpec(
        name=shared_topic or es.topics.shared_events,
        partitions=min(3, es.partitions),
        replication_factor=factor,
        min_insync_replicas=min_isr,
    )
    tasks = None
    if es.topics.task_events is not None:  # the feed: same partitions, so order per execution
        tasks = replace(pipeline, name=es.topics.task_events)
    return TopicsConfig(pipeline=pipeline, shared=shared, tasks=tasks)


def weaker_than_default(settings: Settings) -> list[str]:
    """Durability declared below the defaults (``config check`` reports it)."""
    rep = settings.distributed.synchronization.replication
    out = []
    if rep.factor is not None and rep.factor < 3:
        out.append(
            f"distributed.synchronization.replication.factor {rep.factor}: fewer copies "
            "than the default min(3, brokers); remove it to use the default"
        )
    if rep.min_replicas is not None and rep.min_replicas < 2:
        out.append(
            f"distributed.synchronization.replication.min_replicas {rep.min_replicas}: an "
            "acks=all write is acknowledged by one copy; remove it for min(2, replication)"
        )
    return out


async def ensure_configured_topics(
    bootstrap: str,
    topics: TopicsConfig,
    *,
    deadline_s: float = 30.0,
    connect_deadline_s: float | None = None,
    consumer_only: bool = False,
    security: KafkaSecurity = PLAINTEXT,
) -> TopicReport:
    """Create or verify every topic of ``topics`` (events and DLQs).

    A blocking mismatch (a partition count) raises ``TopicMismatch`` before anything is
    created; weaker durability or another retention is logged with its fix.
    ``consumer_only``: another partition count is logged too, not refused (a consumer
    folds whatever partitions exist; only writers depend on the count).
    """
    connect_ms = None if connect_deadline_s is None else int(connect_deadline_s * 1000)
    return await ensure_topics_report(
        bootstrap,
        topics.specs(),
        request_timeout_ms=int(deadline_s * 1000),
        connect_timeout_ms=connect_ms,
        strict=not consumer_only,
        security=security,
    )


async def describe_configured_topics(
    bootstrap: str,
    topics: TopicsConfig,
    *,
    deadline_s: float = 30.0,
    security: KafkaSecurity = PLAINTEXT,
) -> TopicReport:
    """Every topic of ``topics`` as the cluster has it, with its problems."""
    return await describe_topics(
        bootstrap, topics.specs(), request_timeout_ms=int(deadline_s * 1000), security=security
    )


def with_names(topics: TopicsConfig, pipeline: str | None, shared: str | None) -> TopicsConfig:
    """``topics`` with the events topics renamed (``None`` keeps a name)."""
    return replace(
        topics,
        pipeline=replace(topics.pipeline, name=pipeline or topics.pipeline.name),
        shared=replace(topics.shared, name=shared or topics.shared.name),
    )
