"""The history service: events of an execution from A to B, and its state at any point.

``History`` (``service``) reads through the ``EventArchive`` port (``archive``; the
PostgreSQL adapter is ``projections.PostgresEventArchive``) with the Kafka ``LogReader``
(``logreader``) as fallback, and starts from snapshots through the ``SnapshotBases``
port (``snapshots.SnapshotBaseReader``). It does no I/O of its own and folds with the
one pure fold, ``events.fold.step``.
"""

from orchestrator.events.history.archive import (
    ArchivedEvent,
    EventArchive,
    Located,
    MemoryEventArchive,
)
from orchestrator.events.history.errors import (
    LogPartitionUnknown,
    NothingToRestore,
    UnknownCheckpoint,
)
from orchestrator.events.history.logreader import LogReader, reading_log
from orchestrator.events.history.service import (
    Base,
    Bound,
    History,
    HistoryStep,
    Restored,
    SnapshotBases,
    Source,
    Target,
)

__all__ = [
    "ArchivedEvent",
    "Base",
    "Bound",
    "EventArchive",
    "History",
    "HistoryStep",
    "Located",
    "LogPartitionUnknown",
    "LogReader",
    "MemoryEventArchive",
    "NothingToRestore",
    "Restored",
    "SnapshotBases",
    "Source",
    "Target",
    "UnknownCheckpoint",
    "reading_log",
]
