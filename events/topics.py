"""The topics the event log lives in, and making sure the broker has them as declared.

Topic layout is part of correctness, not tuning: an execution's events are totally
ordered only because its key always hashes to the same partition, and that holds only
while the partition count stays what it was. So :func:`ensure_topics` creates what is
missing and *refuses* (``TopicMismatch``) an existing topic whose partition count
differs, before creating anything. A weaker durability setting (fewer replicas, a lower
``min.insync.replicas``) or another retention on an existing topic is reported
(``TopicProblem``, with the command that fixes it) and logged once, not a crash.

:func:`effective_spec` is the one place that turns a declaration into the settings a
topic gets: replication ``min(3, brokers)`` and ``min.insync.replicas``
``min(2, replication)`` unless declared otherwise. Every path that creates topics
(the app, ``project``, ``snapshots run``, ``topics ensure``, ``orchestrator.connect``)
goes through :func:`ensure_topics`, so events and DLQs always agree.

Listing uses a metadata request for *all* topics: asking for named topics would make a
broker with ``auto.create.topics.enable`` create them with its own defaults.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass, field, replace

from orchestrator.events import _topic_admin as _admin
from orchestrator.events.catalogue import SHARED_EVENT_TYPES
from orchestrator.events.errors import LogError, error_fields
from orchestrator.events.security import PLAINTEXT, KafkaSecurity

logger = logging.getLogger(__name__)

DEFAULT_PIPELINE_TOPIC = "orchestrator.pipeline.events"
DEFAULT_SHARED_TOPIC = "orchestrator.shared.events"
FOREVER = -1
"""``retention_ms`` that keeps records forever."""


def dlq_name(topic: str) -> str:
    """The dead-letter companion of ``topic``."""
    return topic + ".dlq"


@error_fields("topic {topic!r}: {setting} is {actual}, expected {expected}{_fix_and_more}")
class TopicMismatch(LogError):
    """A topic exists (or would be created) with a setting other than the declared one.

    Not retriable: an operator has to change the topic or the configuration. ``fix`` is
    the command (or setting) that resolves it; ``problems`` every mismatch found at once.
    """

    retriable = False

    topic: str
    setting: str
    expected: object
    actual: object
    _: KW_ONLY
    fix: str | None = None
    problems: Sequence[TopicProblem] = ()

    def __post_init__(self) -> None:
        self.problems = tuple(self.problems)

    @property
    def _fix_and_more(self) -> str:
        fix = f"; fix: {self.fix}" if self.fix else ""
        return fix + "".join(f"\n{more}" for more in self.problems[1:])

    @classmethod
    def of(cls, problems: Sequence[TopicProblem]) -> TopicMismatch:
        """One error for every problem found (the first gives the fields)."""
        p = problems[0]
        return cls(p.topic, p.setting, p.expected, p.actual, fix=p.fix, problems=problems)


@dataclass(frozen=True, slots=True, kw_only=True)
class TopicProblem:
    """An existing topic differs from its declaration: what, and the command that fixes it.

    ``blocking`` problems (a partition count) stop start-up; the others (weaker
    durability, another retention) are reported and logged, and the topic is used.
    """

    topic: str
    setting: str
    expected: object
    actual: object
    fix: str
    blocking: bool = False

    def __str__(self) -> str:
        return (
            f"topic {self.topic!r}: {self.setting} is {self.actual}, expected "
            f"{self.expected}; fix: {self.fix}"
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class TopicSpec:
    """One topic as declared in configuration.

    ``replication_factor=None`` means min(3, brokers in the cluster), so one
    declaration serves a one-broker dev stack and a three-broker cluster;
    ``min_insync_replicas=None`` means min(2, replication) (see :func:`effective_spec`).
    ``retention_ms=None`` leaves the broker default; ``FOREVER`` (-1) keeps everything.
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
    tasks: TopicSpec | None = None
    """The task-events feed (``events.task_feed``), when configured: derived, no DLQ."""

    def with_prefix(self, prefix: str) -> TopicsConfig:
        """The same layout under prefixed names (tests, or several stacks on one cluster)."""
        return replace(
            self,
            pipeline=replace(self.pipeline, name=prefix + self.pipeline.name),
            shared=replace(self.shared, name=prefix + self.shared.name),
            tasks=None
            if self.tasks is None
            else replace(self.tasks, name=prefix + self.tasks.name),
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
        """Every topic the system needs: the two event topics and their DLQs, and the
        task-events feed when configured."""
        events = (self.pipeline, self.dlq(self.pipeline), self.shared, self.dlq(self.shared))
        return events if self.tasks is None else (*events, self.tasks)

    def topic_for(self, event_type: str) -> str:
        """Where an event of this type goes: shared-state events to the shared topic."""
        return self.shared.name if event_type in SHARED_EVENT_TYPES else self.pipeline.name


def effective_spec(spec: TopicSpec, brokers: int) -> TopicSpec:
    """The settings ``spec`` gets on a cluster of ``brokers``: the one computation.

    Replication ``min(3, brokers)`` and ``min.insync.replicas`` ``min(2, replication)``
    unless declared; a declared replication above ``brokers`` or a ``min.insync.replicas``
    above the replication (no write could ever be acknowledged) is a ``TopicMismatch``.
    """
    replication = spec.replication_factor
    if replication is None:
        replication = min(3, max(1, brokers))
    elif replication > brokers:
        # Some brokers (Tansu) accept any factor and ignore it: check here, for all.
        raise TopicMismatch(
            spec.name,
            "replication_factor",
            f"at most {brokers} (the number of brokers in the cluster)",
            replication,
            fix="lower distributed.synchronization.replication.factor or add brokers",
        )
    min_isr = spec.min_insync_replicas
    if min_isr is None:
        min_isr = min(2, replication)
    elif min_isr > replication:
        raise TopicMismatch(
            spec.name,
            "min.insync.replicas",
            f"at most {replication} (the replication factor)",
            min_isr,
            fix="lower distributed.synchronization.replication.min_replicas",
        )
    return replace(spec, replication_factor=replication, min_insync_replicas=min_isr)


@dataclass(frozen=True, slots=True, kw_only=True)
class TopicState:
    """A declared topic as the cluster has it (``exists=False``: not created yet).

    ``expected`` is the declaration after :func:`effective_spec`; the ``None`` fields
    are what the broker would not tell.
    """

    expected: TopicSpec
    exists: bool
    partitions: int | None = None
    replication_factor: int | None = None
    min_insync_replicas: int | None = None
    retention_ms: int | None = None

    @property
    def name(self) -> str:
        return self.expected.name


@dataclass(frozen=True, slots=True, kw_only=True)
class TopicReport:
    """What :func:`describe_topics` / :func:`ensure_topics` found and did."""

    bootstrap_servers: str
    brokers: int
    topics: tuple[TopicState, ...]
    problems: tuple[TopicProblem, ...] = ()
    created: tuple[str, ...] = ()

    @property
    def blocking(self) -> tuple[TopicProblem, ...]:
        return tuple(p for p in self.problems if p.blocking)


def _int(value: str | None) -> int | None:
    try:
        return None if value is None else int(value)
    except ValueError:
        return None


def _problems(
    state: TopicState, bootstrap: str, strict_partitions: bool = True
) -> list[TopicProblem]:
    """How an existing topic differs from its declaration, each with its fix."""
    spec, name, out = state.expected, state.name, []
    configs = f"kafka-configs.sh --bootstrap-server {bootstrap} --alter --entity-type topics"
    if state.partitions is not None and state.partitions != spec.partitions:
        out.append(
            TopicProblem(
                topic=name,
                setting="partitions",
                expected=spec.partitions,
                actual=state.partitions,
                blocking=strict_partitions,
                fix=f"declare partitions {state.partitions} for this topic (for the events "
                "topic: state_management.event_store.partitions), or delete the topic and "
                "let `orchestrator-state topics ensure` recreate it: changing the count "
                "moves executions to other partitions",
            )
        )
    wanted_rf = spec.replication_factor or 1
    if state.replication_factor is not None and state.replication_factor < wanted_rf:
        out.append(
            TopicProblem(
                topic=name,
                setting="replication_factor",
                expected=wanted_rf,
                actual=state.replication_factor,
                fix=f"kafka-reassign-partitions.sh --bootstrap-server {bootstrap} --execute "
                f"--reassignment-json-file <a plan giving each partition of {name} "
                f"{wanted_rf} replicas>",
            )
        )
    declared = spec.topic_configs()
    for key, actual in (
        ("min.insync.replicas", state.min_insync_replicas),
        ("retention.ms", state.retention_ms),
    ):
        if key in declared and actual is not None and str(actual) != declared[key]:
            out.append(
                TopicProblem(
                    topic=name,
                    setting=key,
                    expected=int(declared[key]),
                    actual=actual,
                    fix=f"{configs} --entity-name {name} --add-config {key}={declared[key]}",
                )
            )
    return out


async def _inspect(
    admin: object, bootstrap: str, specs: Sequence[TopicSpec]
) -> tuple[int, list[TopicState]]:
    brokers = await _admin.count_brokers(admin)
    resolved = [effective_spec(spec, brokers) for spec in specs]
    existing = await _admin.describe_all(admin)
    states = []
    for spec in resolved:
        found = existing.get(spec.name)
        if found is None:
            states.append(TopicState(expected=spec, exists=False))
            continue
        parts = found["partitions"]
        configs = await _admin.describe_configs(admin, spec.name, _admin.TOPIC_CONFIG_KEYS)
        states.append(
            TopicState(
                expected=spec,
                exists=True,
                partitions=len(parts),
                replication_factor=min((len(p["replicas"]) for p in parts), default=0),
                min_insync_replicas=_int(configs.get("min.insync.replicas")),
                retention_ms=_int(configs.get("retention.ms")),
            )
        )
    return brokers, states


async def describe_topics(
    bootstrap_servers: str,
    specs: Iterable[TopicSpec],
    *,
    client_id: str = "orchestrator-state-admin",
    request_timeout_ms: int = 30_000,
    security: KafkaSecurity = PLAINTEXT,
) -> TopicReport:
    """The declared topics as the cluster has them, with every problem; creates nothing."""
    async with _admin.admin_client(
        bootstrap_servers,
        client_id=client_id,
        request_timeout_ms=request_timeout_ms,
        security=security,
    ) as admin:
        brokers, states = await _inspect(admin, bootstrap_servers, list(specs))
    problems = [p for s in states if s.exists for p in _problems(s, bootstrap_servers)]
    return TopicReport(
        bootstrap_servers=bootstrap_servers,
        brokers=brokers,
        topics=tuple(states),
        problems=tuple(problems),
    )


async def ensure_topics_report(
    bootstrap_servers: str,
    specs: Iterable[TopicSpec],
    *,
    client_id: str = "orchestrator-state-admin",
    request_timeout_ms: int = 30_000,
    connect_timeout_ms: int | None = None,
    strict: bool = True,
    security: KafkaSecurity = PLAINTEXT,
) -> TopicReport:
    """Create the missing topics, verify the existing ones; report what was found.

    ``strict=False`` (a process that only consumes: ``project``, ``snapshots run``)
    reports another partition count instead of refusing it: a consumer folds whatever
    partitions exist, only writers depend on the count.

    Raises ``TopicMismatch`` (listing every blocking problem) *before creating anything*
    when a partition count differs, or a declaration cannot be met on this cluster.
    Non-blocking problems are logged once each, with their fix, and returned.
    """
    wanted = list(specs)
    async with _admin.admin_client(
        bootstrap_servers,
        client_id=client_id,
        request_timeout_ms=request_timeout_ms,
        connect_timeout_ms=connect_timeout_ms,
        security=security,
    ) as admin:
        brokers, states = await _inspect(admin, bootstrap_servers, wanted)
        problems = [p for s in states if s.exists for p in _problems(s, bootstrap_servers, strict)]
        blocking = [p for p in problems if p.blocking]
        if blocking:
            raise TopicMismatch.of(blocking)
        missing = [s.expected for s in states if not s.exists]
        created = await _admin.create(
            admin,
            [(s.name, s.partitions, s.replication_factor or 1, s.topic_configs()) for s in missing],
            request_timeout_ms,
        )
        raced = [s for s in missing if s.name not in created]
        if raced:  # created concurrently by another process: verify them too
            names = {r.name for r in raced}
            _, again = await _inspect(
                admin, bootstrap_servers, [s for s in wanted if s.name in names]
            )
            for state in again:
                if not state.exists:
                    raise LogError(
                        f"topic {state.name!r} neither created nor found", retriable=True
                    )
                found = _problems(state, bootstrap_servers, strict)
                if any(p.blocking for p in found):
                    raise TopicMismatch.of([p for p in found if p.blocking])
                problems.extend(found)
        if created:
            await _admin.wait_for_leaders(admin, created, request_timeout_ms)
    for problem in problems:
        logger.warning("%s", problem)
    return TopicReport(
        bootstrap_servers=bootstrap_servers,
        brokers=brokers,
        topics=tuple(states),
        problems=tuple(problems),
        created=tuple(created),
    )


async def ensure_topics(
    bootstrap_servers: str,
    specs: Iterable[TopicSpec],
    *,
    client_id: str = "orchestrator-state-admin",
    request_timeout_ms: int = 30_000,
    strict: bool = True,
    security: KafkaSecurity = PLAINTEXT,
) -> list[str]:
    """:func:`ensure_topics_report`, returning only the names created."""
    report = await ensure_topics_report(
        bootstrap_servers,
        specs,
        client_id=client_id,
        request_timeout_ms=request_timeout_ms,
        strict=strict,
        security=security,
    )
    return list(report.created)
