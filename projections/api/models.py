"""Response bodies, shaped like the seed's state documents.

``ExecutionOut`` is the seed's "Pipeline State" plus the fencing fields a debugger
needs (``epoch``, ``last_sequence``, ``owner``) and the fork lineage; ``TaskOut`` the
seed's ``task_state``; ``VariableOut`` an entry of the seed's shared ``variables``.
User data (context, inputs, outputs, values) is opaque JSON, passed through as is.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# The pipeline machine's states (events.machines.PIPELINE_MACHINE.states); spelled out
# so the OpenAPI document lists them, and pinned to the machine by a unit test.
PipelineStatus = Literal[
    "initialized", "validating", "running", "paused", "completed", "failed", "cancelled"
]


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class CheckpointRefOut(_Out):
    """A checkpoint as listed inside the pipeline state (the seed's ``checkpoints``)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    checkpoint_id: str | None = None
    name: str | None = None
    task_id: str | None = None
    timestamp: datetime | None = None
    sequence: int | None = None
    progress: float | None = None


class ExecutionSummary(_Out):
    """One row of ``GET /executions``: the state without the bulky user data."""

    execution_id: str
    pipeline_id: str
    status: str
    created_at: datetime | None
    started_at: datetime | None
    updated_at: datetime | None
    completed_at: datetime | None
    progress: float
    current_task: str | None
    error: str | None
    epoch: int
    last_sequence: int
    forked_from: str | None
    root_execution_id: str | None


class ExecutionOut(ExecutionSummary):
    """One execution: the seed's pipeline state, plus fencing and lineage fields."""

    completed_tasks: list[str]
    pending_tasks: list[str]
    context: dict[str, Any]
    checkpoints: list[CheckpointRefOut]
    outputs: Any = None
    owner: str | None
    fork_sequence: int | None
    event_count: int
    position: str | None = Field(
        description="Log position (topic:partition:offset) of the last event applied."
    )


class ExecutionPage(_Out):
    """A page of executions, newest first; pass ``next_cursor`` as ``cursor`` for more."""

    items: list[ExecutionSummary]
    next_cursor: str | None


class TaskOut(_Out):
    """The seed's ``task_state``."""

    task_id: str
    status: str
    attempts: int
    depends_on: list[str]
    started_at: datetime | None
    completed_at: datetime | None
    inputs: Any = None
    outputs: Any = None
    metadata: Any = None
    execution_details: dict[str, Any]
    error: str | None
    retryable: bool | None
    retry_delay_seconds: float | None
    created_at: datetime | None
    updated_at: datetime | None


class TaskList(_Out):
    """Every task of one execution, in creation order."""

    execution_id: str
    items: list[TaskOut]


class CheckpointOut(_Out):
    """A saved checkpoint, with its data, as ``checkpoint.restore`` would load it."""

    checkpoint_id: str
    execution_id: str
    pipeline_id: str
    name: str
    task_id: str | None
    sequence: int
    progress: float | None
    data: Any = None
    metadata: Any = None
    created_at: datetime


class CheckpointList(_Out):
    """One execution's checkpoints, oldest first; pass ``next_after`` as ``after`` for
    the next page (``None``: this was the last)."""

    execution_id: str
    items: list[CheckpointOut]
    next_after: int | None = None


class EventOut(_Out):
    """One archived event, with the fold's verdict (``outcome``) on it."""

    position: str
    topic: str
    partition: int
    offset: int
    sequence: int | None
    epoch: int
    event_id: str
    event_type: str
    occurred_at: datetime
    outcome: str = Field(description="The fold's verdict: applied, duplicate, stale_epoch, ...")
    reason: str | None = Field(default=None, description="Why it was not applied, if not.")
    payload: Any


class EventPage(_Out):
    """Events in log order; pass ``next_after`` as ``after`` for the next page."""

    execution_id: str
    items: list[EventOut]
    next_after: int | None


class VariableOut(_Out):
    """One shared variable, as in the seed's ``shared_state.variables``."""

    type: str
    value: Any = None
    updated_by: str | None
    updated_at: datetime | None
    immutable: bool
    version: int


class NamespaceOut(_Out):
    """The seed's ``shared_state``: a namespace and its live variables by name."""

    namespace: str
    variables: dict[str, VariableOut]


class HealthOut(_Out):
    """``ok`` when PostgreSQL answers; ``notifications`` is the LISTEN connection's state."""

    status: Literal["ok", "unavailable"]
    database: str
    notifications: Literal["ok", "reconnecting"]


class ErrorOut(_Out):
    """An RFC 9457 problem (``application/problem+json``); some problems add fields
    (``execution_id``, ``position``, ``wait_ms``, ``errors``)."""

    model_config = ConfigDict(frozen=True, extra="allow")

    type: str
    title: str
    status: int
    detail: str
    instance: str | None = None
