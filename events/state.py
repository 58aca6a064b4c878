"""The folded state: an execution with its tasks, and a shared-state namespace.

Shaped like the seed's "Pipeline State", "Task State" and "Shared State". Values are
immutable; the fold returns new objects. User data is held decoded (JSON values), a
claim-checked value as its ``{"$blob": ...}`` marker.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class TaskState:
    """One task of an execution (the seed's ``task_state``)."""

    task_id: str
    status: str = "pending"
    attempts: int = 0
    depends_on: tuple[str, ...] = ()
    started_at: datetime | None = None
    completed_at: datetime | None = None
    inputs: Any = None
    outputs: Any = None
    metadata: Any = None
    execution_details: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None
    retryable: bool | None = None
    retry_delay_seconds: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class CheckpointRef:
    """A checkpoint as listed in the pipeline state (``checkpoints``)."""

    checkpoint_id: str
    name: str
    task_id: str | None
    timestamp: datetime
    sequence: int
    progress: float | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutionState:
    """One execution of a pipeline (the seed's pipeline state), plus fencing fields."""

    execution_id: str
    pipeline_id: str
    status: str = "initialized"
    epoch: int = 0
    owner: str | None = None
    last_sequence: int = 0
    created_at: datetime | None = None
    started_at: datetime | None = None
    updated_at: datetime | None = None
    completed_at: datetime | None = None
    progress: float = 0.0
    current_task: str | None = None
    completed_tasks: tuple[str, ...] = ()
    pending_tasks: tuple[str, ...] = ()
    context: Mapping[str, Any] = field(default_factory=dict)
    checkpoints: tuple[CheckpointRef, ...] = ()
    tasks: Mapping[str, TaskState] = field(default_factory=dict)
    error: str | None = None
    outputs: Any = None
    forked_from: str | None = None
    fork_sequence: int | None = None
    root_execution_id: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class SharedVariable:
    """A shared variable (the seed's ``variables`` entry); ``deleted`` keeps its version."""

    name: str
    type: str
    value: Any
    immutable: bool = False
    updated_by: str | None = None
    updated_at: datetime | None = None
    version: int = 1
    deleted: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class NamespaceState:
    """The shared variables of one namespace."""

    namespace: str
    variables: Mapping[str, SharedVariable] = field(default_factory=dict)
