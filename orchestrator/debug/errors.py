"""Errors of the history tools (replay, trace, check, fork).

    OrchestratorStateError                         (events.errors)
    └── StateError                                 (orchestrator.state.errors)
        └── HistoryError                           a history question that cannot be answered
            ├── HistoryNotFound(execution_id, source)
            │                                      no event of the execution in that source
            ├── PartitionUnknown(execution_id, topic)
            │                                      the log partition of an execution is unknown
            └── ForkError(execution_id, reason)    a fork that cannot be made

Errors of the layers below (``DecodeError``, ``LogError``, ``CheckpointNotFound``...)
pass through unchanged.
"""

from __future__ import annotations

from orchestrator.events import error_fields
from orchestrator.state import StateError


class HistoryError(StateError):
    """A question about an execution's history that cannot be answered."""


@error_fields("execution {execution_id}: no events in the {source}")
class HistoryNotFound(HistoryError):
    """The source holds no event of the execution (unknown id, or history deleted)."""

    execution_id: str
    source: str


@error_fields("execution {execution_id}: cannot find its partition of topic {topic}")
class PartitionUnknown(HistoryError):
    """The log partition of an execution could not be found (topic missing?)."""

    execution_id: str
    topic: str


@error_fields("cannot fork execution {execution_id}: {reason}")
class ForkError(HistoryError):
    """A fork that cannot be made (``reason`` says why); nothing was written."""

    execution_id: str
    reason: str
