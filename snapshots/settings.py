"""``SnapshotterSettings``: what a snapshotter process reads and writes (group, topic,
batch size, tables, the archive fallback); plain values, no driver imported."""

from __future__ import annotations

from dataclasses import dataclass, field

from orchestrator.events import DEFAULT_PIPELINE_TOPIC
from orchestrator.projections import TableNames


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotterSettings:
    """The snapshotter process: group name, topic, batch size, tables, fallbacks."""

    name: str = "snapshotter"
    """Consumer group and ``projection_offsets`` name."""
    topic: str = DEFAULT_PIPELINE_TOPIC
    batch_size: int = 2000
    poll_timeout_ms: int = 200
    clean_cache: int = 10_000
    write_concurrency: int = 8
    index_table: str = "snapshots"
    tables: TableNames = field(default_factory=TableNames)
    events_table: str = "public.execution_events"
    archive_projection: str | None = "read_models"
    """Projection whose archive rebuilds an execution no snapshot can serve (None: none)."""
    archive_wait_s: float = 60.0
    kafka_commit_interval_s: float = 1.0
    client_id: str = "orchestrator-snapshotter"

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError("batch_size must be >= 1")
