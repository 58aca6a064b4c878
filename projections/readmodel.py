"""The read-model rows, and the lossless mapping between them and the folded state.

The processor folds a batch on top of the states *read back from its own tables*
(design §4: the read model's transaction is the source of truth), so
``execution_from_rows(pipeline_row(s), task_rows(s)) == s`` must hold for every
state the fold can produce; ``tests/unit/test_readmodel.py`` pins that. Task order
matters (the fold's summaries list tasks in declaration order), so ``task_states``
keeps an ``ordinal``.

Everything here is pure: rows are tuples in the column order of the ``*_COLUMNS``
constants, JSON columns as ``str`` (what asyncpg sends for ``jsonb``), so the
PostgreSQL adapter (``projections.store``) only moves them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from orchestrator.events import (
    CheckpointRef,
    Envelope,
    ExecutionState,
    SharedVariable,
    TaskState,
    from_fields,
)
from orchestrator.projections._jsontext import dumps as dumps
from orchestrator.projections._jsontext import loads as loads
from orchestrator.projections._payload import json_value

PIPELINE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("execution_id", "text"),
    ("pipeline_id", "text"),
    ("status", "text"),
    ("epoch", "bigint"),
    ("owner", "text"),
    ("last_sequence", "bigint"),
    ("created_at", "timestamptz"),
    ("started_at", "timestamptz"),
    ("updated_at", "timestamptz"),
    ("completed_at", "timestamptz"),
    ("progress", "float8"),
    ("current_task", "text"),
    ("completed_tasks", "jsonb"),
    ("pending_tasks", "jsonb"),
    ("context", "jsonb"),
    ("error", "text"),
    ("outputs", "jsonb"),
    ("forked_from", "text"),
    ("fork_sequence", "bigint"),
    ("root_execution_id", "text"),
    ("event_count", "bigint"),
    ("last_topic", "text"),
    ("last_partition", "int4"),
    ("last_offset", "bigint"),
)
"""``pipeline_states``: the execution without its tasks and checkpoints, plus where it was
last seen. Its checkpoint list is the live rows of ``checkpoints`` (migration 0015): a
list in this row, rewritten by every batch, made its TOAST churn as it grew."""

TASK_COLUMNS: tuple[tuple[str, str], ...] = (
    ("execution_id", "text"),
    ("task_id", "text"),
    ("pipeline_id", "text"),
    ("ordinal", "int4"),
    ("status", "text"),
    ("attempts", "int4"),
    ("depends_on", "jsonb"),
    ("started_at", "timestamptz"),
    ("completed_at", "timestamptz"),
    ("inputs", "jsonb"),
    ("outputs", "jsonb"),
    ("metadata", "jsonb"),
    ("execution_details", "jsonb"),
    ("error", "text"),
    ("retryable", "bool"),
    ("retry_delay_seconds", "float8"),
    ("created_at", "timestamptz"),
    ("updated_at", "timestamptz"),
)
"""``task_states``: one row per task; ``updated_at`` is when the fold last changed it."""

CHECKPOINT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("checkpoint_id", "text"),
    ("execution_id", "text"),
    ("pipeline_id", "text"),
    ("name", "text"),
    ("task_id", "text"),
    ("sequence", "bigint"),
    ("progress", "float8"),
    ("data", "jsonb"),
    ("metadata", "jsonb"),
    ("created_at", "timestamptz"),
    ("deleted_at", "timestamptz"),
)
"""``checkpoints``: one row per applied ``CheckpointSaved``; ``deleted_at`` is set when a
``CheckpointsDeleted`` withdraws it from the execution's list (the row stays: history,
``checkpoint.list``). The live rows, by sequence, are the state's ``checkpoints``."""

SHARED_VARIABLE_COLUMNS: tuple[tuple[str, str], ...] = (
    ("namespace", "text"),
    ("name", "text"),
    ("type", "text"),
    ("value", "jsonb"),
    ("immutable", "bool"),
    ("updated_by", "text"),
    ("updated_at", "timestamptz"),
    ("version", "bigint"),
    ("deleted", "bool"),
)

_POSITION_COLUMNS: tuple[tuple[str, str], ...] = (
    ("topic", "text"),
    ("partition", "int4"),
    ("offset", "bigint"),
)
_VERDICT_COLUMNS: tuple[tuple[str, str], ...] = (
    ("event_id", "text"),
    ("event_type", "text"),
    ("occurred_at", "timestamptz"),
    ("outcome", "text"),
    ("reason", "text"),
    ("payload", "jsonb"),
    ("raw", "bytea"),
)
"""What every archived event row ends with: the event, the fold's verdict, its bytes."""

EVENT_COLUMNS: tuple[tuple[str, str], ...] = (
    *_POSITION_COLUMNS,
    ("execution_id", "text"),
    ("pipeline_id", "text"),
    ("sequence", "bigint"),
    ("epoch", "bigint"),
    *_VERDICT_COLUMNS,
)
"""``execution_events``: every event read from the pipeline topic, with the fold's verdict."""

SHARED_EVENT_COLUMNS: tuple[tuple[str, str], ...] = (
    *_POSITION_COLUMNS,
    ("namespace", "text"),
    ("name", "text"),
    ("version", "bigint"),
    *_VERDICT_COLUMNS,
)
"""``shared_events``: every shared-state event, with the fold's verdict."""

Row = tuple[Any, ...]


# --- executions ----------------------------------------------------------------------


def checkpoint_json(ref: CheckpointRef) -> dict[str, Any]:
    """A checkpoint of the state's list as JSON (the API's and Redis' shape)."""
    return {
        "checkpoint_id": ref.checkpoint_id,
        "name": ref.name,
        "task_id": ref.task_id,
        "timestamp": ref.timestamp.isoformat(),
        "sequence": ref.sequence,
        "progress": ref.progress,
    }


def checkpoint_from_json(obj: Mapping[str, Any]) -> CheckpointRef:
    """The inverse of :func:`checkpoint_json`."""
    return from_fields(CheckpointRef, obj, timestamp=datetime.fromisoformat(obj["timestamp"]))


def _context_json(context: Mapping[str, Any]) -> str | None:
    return dumps(dict(context))


_DUMPED: dict[int, tuple[Any, str | None]] = {}
_DUMPED_MAX = 8192


def _dumps_once(value: Any, to_json: Any) -> str | None:
    """``to_json(value)``, remembered by identity for values the fold never changes but
    carries from state to state (an execution's context): a pipeline row is written in
    every batch that touches the execution. The entry keeps ``value`` alive, so its id
    cannot be reused while remembered."""
    key = id(value)
    hit = _DUMPED.get(key)
    if hit is not None and hit[0] is value:
        return hit[1]
    text: str | None = to_json(value)
    if len(_DUMPED) >= _DUMPED_MAX:
        _DUMPED.clear()
    _DUMPED[key] = (value, text)
    return text


def pipeline_row(
    state: ExecutionState,
    *,
    event_count: int,
    last_position: tuple[str, int, int] | None,
) -> Row:
    """The ``pipeline_states`` row of ``state`` (column order of ``PIPELINE_COLUMNS``)."""
    topic, partition, offset = last_position or (None, None, None)
    return (
        state.execution_id,
        state.pipeline_id,
        state.status,
        state.epoch,
        state.owner,
        state.last_sequence,
        state.created_at,
        state.started_at,
        state.updated_at,
        state.completed_at,
        state.progress,
        state.current_task,
        dumps(list(state.completed_tasks)),
        dumps(list(state.pending_tasks)),
        _dumps_once(state.context, _context_json),
        state.error,
        dumps(state.outputs),
        state.forked_from,
        state.fork_sequence,
        state.root_execution_id,
        event_count,
        topic,
        partition,
        offset,
    )


def task_row(
    state: ExecutionState, task: TaskState, ordinal: int, updated_at: datetime | None
) -> Row:
    """The ``task_states`` row of one task of ``state``."""
    return (
        state.execution_id,
        task.task_id,
        state.pipeline_id,
        ordinal,
        task.status,
        task.attempts,
        dumps(list(task.depends_on)),
        task.started_at,
        task.completed_at,
        dumps(task.inputs),
        dumps(task.outputs),
        dumps(task.metadata),
        dumps(dict(task.execution_details)),
        task.error,
        task.retryable,
        task.retry_delay_seconds,
        state.created_at,
        updated_at,
    )


def task_rows(state: ExecutionState, updated_at: datetime | None = None) -> list[Row]:
    """Every task row of ``state`` (all stamped ``updated_at``)."""
    return [task_row(state, t, i, updated_at) for i, t in enumerate(state.tasks.values())]


def task_from_row(row: Mapping[str, Any]) -> TaskState:
    """A ``TaskState`` from its ``task_states`` row (a mapping by column name)."""
    return TaskState(
        task_id=row["task_id"],
        status=row["status"],
        attempts=row["attempts"],
        depends_on=tuple(loads(row["depends_on"])),
        started_at=row["started_at"],
        completed_at=row["completed_at"],
        inputs=loads(row["inputs"]),
        outputs=loads(row["outputs"]),
        metadata=loads(row["metadata"]),
        execution_details=loads(row["execution_details"]),
        error=row["error"],
        retryable=row["retryable"],
        retry_delay_seconds=row["retry_delay_seconds"],
    )


def checkpoint_from_row(row: Mapping[str, Any]) -> CheckpointRef:
    """A checkpoint of the state's list from its ``checkpoints`` row."""
    return from_fields(CheckpointRef, row, timestamp=row["created_at"])


def live_checkpoints(rows: Iterable[Mapping[str, Any]]) -> tuple[CheckpointRef, ...]:
    """The state's ``checkpoints`` from its execution's ``checkpoints`` rows (any order,
    withdrawn ones included): the live ones, by sequence, as the fold listed them."""
    live = [r for r in rows if r.get("deleted_at") is None]
    live.sort(key=lambda r: r["sequence"])
    return tuple(checkpoint_from_row(r) for r in live)


def execution_from_rows(
    pipeline: Mapping[str, Any],
    tasks: Sequence[Mapping[str, Any]],
    checkpoints: tuple[CheckpointRef, ...],
) -> ExecutionState:
    """The ``ExecutionState`` a ``pipeline_states`` row, its task rows and its live
    checkpoints (:func:`live_checkpoints`) hold.

    ``tasks`` may come in any order; they are put back in ``ordinal`` order.
    """
    ordered = sorted(tasks, key=lambda r: r["ordinal"])
    return ExecutionState(
        execution_id=pipeline["execution_id"],
        pipeline_id=pipeline["pipeline_id"],
        status=pipeline["status"],
        epoch=pipeline["epoch"],
        owner=pipeline["owner"],
        last_sequence=pipeline["last_sequence"],
        created_at=pipeline["created_at"],
        started_at=pipeline["started_at"],
        updated_at=pipeline["updated_at"],
        completed_at=pipeline["completed_at"],
        progress=pipeline["progress"],
        current_task=pipeline["current_task"],
        completed_tasks=tuple(loads(pipeline["completed_tasks"])),
        pending_tasks=tuple(loads(pipeline["pending_tasks"])),
        context=loads(pipeline["context"]),
        checkpoints=checkpoints,
        tasks={r["task_id"]: task_from_row(r) for r in ordered},
        error=pipeline["error"],
        outputs=loads(pipeline["outputs"]),
        forked_from=pipeline["forked_from"],
        fork_sequence=pipeline["fork_sequence"],
        root_execution_id=pipeline["root_execution_id"],
    )


def as_mapping(columns: Sequence[tuple[str, str]], row: Row) -> dict[str, Any]:
    """A row tuple as ``{column: value}`` (tests, and rows built rather than read)."""
    return {name: value for (name, _), value in zip(columns, row, strict=True)}


# --- shared variables ----------------------------------------------------------------


def shared_variable_row(namespace: str, var: SharedVariable) -> Row:
    """The ``shared_variables`` row of one variable."""
    return (
        namespace,
        var.name,
        var.type,
        dumps(var.value),
        var.immutable,
        var.updated_by,
        var.updated_at,
        var.version,
        var.deleted,
    )


def shared_variable_from_row(row: Mapping[str, Any]) -> SharedVariable:
    """A ``SharedVariable`` from its row."""
    return SharedVariable(
        name=row["name"],
        type=row["type"],
        value=loads(row["value"]),
        immutable=row["immutable"],
        updated_by=row["updated_by"],
        updated_at=row["updated_at"],
        version=row["version"],
        deleted=row["deleted"],
    )


# --- the event archive ---------------------------------------------------------------


_json_value = json_value


def payload_json(event: Envelope) -> dict[str, Any]:
    """The payload as JSON, user data decoded (a claim-checked value as its marker)."""
    out: dict[str, Any] = _json_value(event.payload)
    return out


def checkpoint_row(state: ExecutionState, event: Envelope) -> Row:
    """The ``checkpoints`` row of an applied ``CheckpointSaved``; its data stays in the
    archived record (``projections.checkpointdata``), not copied here."""
    p: Any = event.payload
    return (
        p.checkpoint_id,
        state.execution_id,
        state.pipeline_id,
        p.name,
        p.task_id,
        event.sequence,
        p.progress,
        None,
        dumps(_json_value(p.metadata)),
        event.occurred_at,
        None,
    )


def checkpoint_ref_row(
    state: ExecutionState, ref: CheckpointRef, deleted_at: datetime | None
) -> Row:
    """A ``checkpoints`` row of ``ref`` without its data or metadata: what marks it
    withdrawn (``deleted_at``, by an applied ``CheckpointsDeleted``). Only ``deleted_at``
    is written over a stored row (``projections.executions`` declares the table so)."""
    return (
        ref.checkpoint_id,
        state.execution_id,
        state.pipeline_id,
        ref.name,
        ref.task_id,
        ref.sequence,
        ref.progress,
        None,
        None,
        ref.timestamp,
        deleted_at,
    )
