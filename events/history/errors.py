"""Errors of the history service.

OrchestratorStateError                   (events.errors)
└── NothingToRestore                     no snapshot and no event for a history target
    ├── UnknownCheckpoint                the target names a checkpoint the history lacks
    └── LogPartitionUnknown              the log partition of an execution is unknown
"""

from __future__ import annotations

from orchestrator.events.errors import OrchestratorStateError, error_fields


@error_fields("nothing to restore for execution {execution_id!r} at {target}")
class NothingToRestore(OrchestratorStateError):
    """Neither a snapshot nor an archived event exists for the requested target."""

    execution_id: str | None
    target: str


class UnknownCheckpoint(NothingToRestore):
    """The target names a checkpoint the execution's history does not hold."""

    def __init__(self, execution_id: str | None, checkpoint_id: str) -> None:
        self.checkpoint_id = checkpoint_id
        super().__init__(execution_id, f"checkpoint {checkpoint_id!r} (unknown)")


class LogPartitionUnknown(NothingToRestore):
    """The log partition of an execution could not be found (topic missing?)."""

    def __init__(self, execution_id: str, topic: str) -> None:
        self.topic = topic
        super().__init__(execution_id, f"the log (no partition of topic {topic})")
