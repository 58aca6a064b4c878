"""Read-model rows to response models (one place that knows both shapes)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator.events import Position
from orchestrator.projections.api.models import (
    EventOut,
    ExecutionOut,
    ExecutionSummary,
    TaskOut,
    VariableOut,
)


def execution_out(row: Mapping[str, Any]) -> ExecutionOut:
    """A ``pipeline_states`` row as the seed's pipeline state."""
    fields: dict[str, Any] = dict(row)
    topic, partition, offset = (
        fields.pop("last_topic"),
        fields.pop("last_partition"),
        fields.pop("last_offset"),
    )
    position = None
    if topic is not None and partition is not None and offset is not None:
        position = Position(topic, partition, offset).token()
    return ExecutionOut.model_validate({**fields, "position": position})


def summary_out(row: Mapping[str, Any]) -> ExecutionSummary:
    """A ``pipeline_states`` row, summary columns only."""
    return ExecutionSummary.model_validate(dict(row))


def task_out(row: Mapping[str, Any]) -> TaskOut:
    """A ``task_states`` row as the seed's ``task_state``."""
    return TaskOut.model_validate(dict(row))


def event_out(row: Mapping[str, Any]) -> EventOut:
    """An ``execution_events`` row, with its position token."""
    fields = dict(row)
    position = Position(fields["topic"], fields["partition"], fields["offset"]).token()
    return EventOut.model_validate({**fields, "position": position})


def variable_out(row: Mapping[str, Any]) -> VariableOut:
    """A ``shared_variables`` row as one entry of the seed's ``variables``."""
    return VariableOut.model_validate(dict(row))
