"""What a processor needs to know: its name, its topics, its batch size, its tables.

Frozen values, built once at the entry point and passed down; nothing here reads the
environment or connects anywhere.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from orchestrator.events import (
    DEFAULT_LIMITS,
    DEFAULT_PIPELINE_TOPIC,
    DEFAULT_SHARED_TOPIC,
    InputLimits,
    dlq_name,
)
from orchestrator.projections.executions import EXECUTIONS
from orchestrator.projections.projection import Projection, projection_of

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")
_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")

NEWEST_SAVE = "ORDER BY created_at DESC, sequence DESC LIMIT 1"
"""Which ``checkpoints`` row an id alone names (``checkpoint.restore``): its newest save.
The rows are keyed by execution and sequence (migration 0019): an id saved again, or by
another execution (a hand-given id), has a row per save."""


def newest_of_its_id(table: str, row: str = "c") -> str:
    """SQL: ``row`` is its execution's newest save of its id. Listings show an id once per
    execution, as before 0019 (when its row was written over by a later save)."""
    return (
        f"NOT EXISTS (SELECT 1 FROM {table} AS later WHERE later.execution_id = {row}.execution_id"
        f" AND later.checkpoint_id = {row}.checkpoint_id AND later.sequence > {row}.sequence)"
    )


REBUILD_SUFFIX = "__rebuild"
OLD_SUFFIX = "__old"


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadModelTables:
    """Where one projection's rows live. The first three come from the seed's ``schema``
    block; a rebuild uses a suffixed copy of all of them (:meth:`suffixed`)."""

    pipeline_states: str = "public.pipeline_states"
    task_states: str = "public.task_states"
    checkpoints: str = "public.checkpoints"
    shared_variables: str = "public.shared_variables"
    execution_events: str = "public.execution_events"
    shared_events: str = "public.shared_events"

    def __post_init__(self) -> None:
        for name, value in self.items():
            if not _IDENT.match(value):
                raise ValueError(f"tables.{name}: {value!r} is not a [schema.]table name")

    def items(self) -> list[tuple[str, str]]:
        """``(field, table)`` for every table, in a fixed order."""
        return [
            ("pipeline_states", self.pipeline_states),
            ("task_states", self.task_states),
            ("checkpoints", self.checkpoints),
            ("shared_variables", self.shared_variables),
            ("execution_events", self.execution_events),
            ("shared_events", self.shared_events),
        ]

    def suffixed(self, suffix: str) -> ReadModelTables:
        """The same tables with ``suffix`` appended to each table name."""
        return ReadModelTables(**{name: value + suffix for name, value in self.items()})


@dataclass(frozen=True, slots=True, kw_only=True)
class ProjectionSettings:
    """One projection: a consumer group (``name``) folding ``topics`` into ``tables``.

    ``pipeline_topic`` events fold with ``events.fold.step``, ``shared_topic`` events
    with ``step_shared``. ``max_cached_executions`` bounds the per-process cache of
    folded states (a speed-up only: the tables stay the source of truth).
    """

    name: str = "read_models"
    pipeline_topic: str = DEFAULT_PIPELINE_TOPIC
    shared_topic: str | None = DEFAULT_SHARED_TOPIC
    tables: ReadModelTables = field(default_factory=ReadModelTables)
    batch_size: int = 2000
    poll_timeout_ms: int = 100
    max_cached_executions: int = 50_000
    notify: bool = True
    dead_letter_projection: str | None = None
    """Dead letters already recorded under this projection are not produced again
    (a rebuild names the live projection here)."""
    kafka_commit_interval_s: float = 1.0
    dlq_partitions: int = 1
    """Partitions of the ``.dlq`` topics :func:`~projections.processor.prepare` creates."""
    session_timeout_ms: int = 10_000
    """How long the group waits for a member that stopped heartbeating (a killed
    processor's partitions move after this)."""
    client_id: str = "orchestrator-projector"
    max_dead_letter_bytes: int = 512 * 1024
    """A poison record bigger than this is dead-lettered by reference (where it is, its
    size, why), not copied: below the DLQ producer's ``max_request_size`` (1 MiB)."""
    limits: InputLimits = DEFAULT_LIMITS
    """What a record may hold (``events.limits``); the processor's codec enforces them."""
    read_model: str = EXECUTIONS.kind
    """The registered read model (``projections.projection.register``) this folds into."""
    table_suffix: str = ""
    """Appended to the default name of every table ``tables`` does not name (a rebuild's)."""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ValueError(f"projection name {self.name!r}: use letters, digits, _ . -")
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if self.max_dead_letter_bytes < 0:
            raise ValueError("max_dead_letter_bytes must be >= 0")

    @property
    def projection(self) -> Projection:
        """The read model's declaration: tables, fold, migrations."""
        return projection_of(self.read_model)

    def table_names(self) -> dict[str, str]:
        """Where each of the read model's tables lives, by table key."""
        return self.projection.names(dict(self.tables.items()), self.table_suffix)

    @property
    def topics(self) -> tuple[str, ...]:
        """The topics this projection consumes."""
        if self.shared_topic is None:
            return (self.pipeline_topic,)
        return (self.pipeline_topic, self.shared_topic)

    def dlq_topic(self, topic: str) -> str:
        """Where poison records of ``topic`` go."""
        return dlq_name(topic)

    def for_rebuild(self) -> ProjectionSettings:
        """The settings of a rebuild of this projection: own name, suffixed tables."""
        return replace(
            self,
            name=self.name + REBUILD_SUFFIX,
            tables=self.tables.suffixed(REBUILD_SUFFIX),
            table_suffix=self.table_suffix + REBUILD_SUFFIX,
            notify=False,
            dead_letter_projection=self.name,
        )
