"""When to snapshot and what to keep: the seed's checkpointing settings as frozen values.

The entry point maps configuration (``event_sourcing.snapshots.frequency``,
``checkpointing.progressive / periodic / on_success``, ``checkpointing.storage.retention``,
``organization.retention_days``) onto these; nothing here reads files or the environment.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.snapshots.errors import SnapshotConfigError

TERMINAL_STATUSES = frozenset({"completed", "failed", "cancelled"})


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotPolicy:
    """Triggers of the snapshotter; every configured one applies.

    * ``frequency``: a snapshot whenever an execution's sequence has advanced this many
      events past its last snapshot (``event_sourcing.snapshots.frequency``, default 100);
    * ``on_terminal``: when an execution reaches completed, failed or cancelled;
    * ``interval``: an execution with events not yet snapshotted for this many seconds
      (wall clock) is snapshotted (``checkpointing.periodic.interval``): long, quiet runs
      do not hold back the snapshotter's committed offset;
    * ``after_tasks``: after one of these tasks completes, unless the last snapshot is
      less than ``min_interval`` seconds older in event time (``progressive``);
    * ``on_success_tasks``: after one of these tasks completes, always (``on_success``).
    """

    frequency: int = 100
    on_terminal: bool = True
    interval: float | None = 300.0
    after_tasks: frozenset[str] = frozenset()
    min_interval: float = 60.0
    on_success_tasks: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.frequency < 1:
            raise SnapshotConfigError("event_sourcing.snapshots.frequency", "must be >= 1")
        if self.interval is not None and self.interval <= 0:
            raise SnapshotConfigError("checkpointing.periodic.interval", "must be > 0")
        if self.min_interval < 0:
            raise SnapshotConfigError("checkpointing.progressive.min_interval", "must be >= 0")


@dataclass(frozen=True, slots=True, kw_only=True)
class RetentionPolicy:
    """What ``snapshots prune`` removes (``None`` switches a rule off).

    * ``max_checkpoints``: keep at most this many snapshots per execution (newest);
    * ``max_age_days``: snapshots created longer ago than this go;
    * ``retention_days``: an execution that finished (completed, failed, cancelled)
      longer ago than this keeps only its protected snapshots.

    Whatever the rules say, two snapshots of each execution are protected: its newest
    (the snapshotter and restore start there) and its newest at or before the earliest
    offset Kafka still holds for its partition (the events before it are gone from the
    log, so nothing else can rebuild that history from Kafka).
    """

    max_checkpoints: int | None = 10
    max_age_days: float | None = 7.0
    retention_days: float | None = None
    blob_grace_hours: float = 24.0
    """Blob retention never deletes a blob written less than this long ago."""

    def __post_init__(self) -> None:
        if self.blob_grace_hours <= 0:
            raise SnapshotConfigError("retention.blob_grace_hours", "must be > 0")
        if self.max_checkpoints is not None and self.max_checkpoints < 1:
            raise SnapshotConfigError("retention.max_checkpoints", "must be >= 1")
        if self.max_age_days is not None and self.max_age_days <= 0:
            raise SnapshotConfigError("retention.max_age_days", "must be > 0")
        if self.retention_days is not None and self.retention_days <= 0:
            raise SnapshotConfigError("organization.retention_days", "must be > 0")
