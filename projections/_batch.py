"""Folding one batch of records into row changes: pure, no I/O.

The processor decodes a batch, loads the current states of the executions (and
shared variables) it touches, and hands everything to :func:`fold_batch`, which
returns exactly what the PostgreSQL transaction must write: the changed rows, the
archive rows of every event (duplicates and zombie writes included, with the fold's
verdict), the dead letters, and the next offset of each partition. Keeping this pure
lets the unit tests check it without Kafka or PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from orchestrator.events import (
    SHARED_EVENT_TYPES,
    CheckpointSaved,
    CheckpointsDeleted,
    DecodedRecord,
    Envelope,
    ExecutionState,
    NamespaceState,
    OrchestratorStateError,
    Outcome,
    RawRecord,
    SharedVariable,
    Step,
    error_fields,
    parsing_once,
    step,
    step_shared,
)
from orchestrator.projections import readmodel as rm
from orchestrator.projections.checkpointdata import archived_payload_json

TP = tuple[str, int]
VarKey = tuple[str, str]

STATE_CHANGES_CHANNEL = "orchestrator_state_changes"
"""NOTIFY channel: a JSON object, each execution id a commit changed -> ``[topic,
partition, offset]`` of its last event applied (a reader that learns it refuses any
cached value that does not reflect it)."""
SHARED_CHANGES_CHANNEL = "orchestrator_shared_changes"
"""NOTIFY channel: the same for the shared-state namespaces a commit changed."""


def parse_changes(payload: str) -> dict[str, tuple[str, int, int] | None]:
    """The keys a changes NOTIFY names, each with the position it now reflects
    (``None`` from a processor older than positions, which sent a JSON array).

    Raises ``ValueError`` for anything else: hostile or garbled payloads are refused."""
    value = json.loads(payload)
    if isinstance(value, list) and all(isinstance(k, str) for k in value):
        return dict.fromkeys(value)
    if not isinstance(value, dict):
        raise ValueError("a changes payload is a JSON object or array")
    out: dict[str, tuple[str, int, int] | None] = {}
    for key, at in value.items():
        match at:
            case [str() as topic, int() as partition, int() as offset]:
                out[key] = (topic, partition, offset)
            case _:
                raise ValueError(f"{key!r}: a position is [topic, partition, offset]")
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetter:
    """A poison record: where it was, why, and its bytes as read."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    raw: bytes
    reason: str
    error_class: str
    execution_id: str | None = None
    event_type: str | None = None
    by_reference: int | None = None
    """The original size when the bytes were too big to copy (``raw`` is then empty)."""


@dataclass(slots=True)
class ExecutionEntry:
    """An execution's folded state with the bookkeeping its row carries."""

    state: ExecutionState
    event_count: int
    tp: TP
    last_position: tuple[str, int, int] | None = None

    def copy(self) -> ExecutionEntry:
        """A shallow copy (``dataclasses.replace`` without its per-call field walk)."""
        return ExecutionEntry(self.state, self.event_count, self.tp, self.last_position)


@dataclass(slots=True)
class BatchChanges:
    """Everything one batch writes, in one transaction."""

    executions: dict[str, ExecutionEntry] = field(default_factory=dict)
    new_executions: set[str] = field(default_factory=set)
    task_updates: dict[tuple[str, str], datetime | None] = field(default_factory=dict)
    checkpoints: dict[tuple[str, int], rm.Row] = field(default_factory=dict)
    """``checkpoints`` rows by (execution id, sequence of the save): saved (``deleted_at``
    NULL) or withdrawn."""
    events: list[rm.Row] = field(default_factory=list)
    shared_events: list[rm.Row] = field(default_factory=list)
    variables: dict[VarKey, SharedVariable] = field(default_factory=dict)
    dead_letters: list[DeadLetter] = field(default_factory=list)
    next_offsets: dict[TP, int] = field(default_factory=dict)
    changed_executions: dict[str, tuple[str, int, int]] = field(default_factory=dict)
    changed_namespaces: dict[str, tuple[str, int, int]] = field(default_factory=dict)
    """Each key a commit changes -> its last event applied (topic, partition, offset)."""

    def pipeline_rows(self) -> list[rm.Row]:
        """``pipeline_states`` rows of every execution the batch touched."""
        return [
            rm.pipeline_row(e.state, event_count=e.event_count, last_position=e.last_position)
            for e in self.executions.values()
        ]

    def task_rows(self) -> list[rm.Row]:
        """``task_states`` rows of the tasks the batch changed."""
        rows: list[rm.Row] = []
        for (execution_id, task_id), updated_at in self.task_updates.items():
            state = self.executions[execution_id].state
            for ordinal, (tid, task) in enumerate(state.tasks.items()):
                if tid == task_id:
                    rows.append(rm.task_row(state, task, ordinal, updated_at))
                    break
        return rows

    def variable_rows(self) -> list[rm.Row]:
        """``shared_variables`` rows of the variables the batch changed."""
        return [rm.shared_variable_row(ns, var) for (ns, _), var in self.variables.items()]

    # --- what the processor asks of any read model (``projections.projection.Folded``)

    def states(self) -> dict[Any, Any]:
        """The executions' entries and the variables the batch changed, by state key."""
        out: dict[Any, Any] = {**self.executions, **self.variables}
        return out

    def rows(self) -> dict[str, list[rm.Row]]:
        """Rows by table key (the executions read model's declaration)."""
        return {
            "pipeline_states": self.pipeline_rows(),
            "task_states": self.task_rows(),
            "checkpoints": list(self.checkpoints.values()),
            "shared_variables": self.variable_rows(),
            "execution_events": self.events,
            "shared_events": self.shared_events,
        }

    def notifications(self) -> dict[str, dict[str, tuple[str, int, int]]]:
        """The executions and namespaces a commit changed (with the position each now
        reflects), by NOTIFY channel."""
        return {
            STATE_CHANGES_CHANNEL: self.changed_executions,
            SHARED_CHANGES_CHANNEL: self.changed_namespaces,
        }


def touched_keys(batch: Iterable[DecodedRecord]) -> tuple[dict[str, TP], set[VarKey]]:
    """The executions (with the partition they were read from) and the shared
    ``(namespace, name)`` keys a batch needs loaded."""
    executions: dict[str, TP] = {}
    variables: set[VarKey] = set()
    for item in batch:
        event = item.envelope
        if event is None:
            continue
        if event.event_type in SHARED_EVENT_TYPES:
            p: Any = event.payload
            variables.add((p.namespace, p.name))
        elif event.execution_id is not None:
            pos = item.record.position
            executions[event.execution_id] = (pos.topic, pos.partition)
    return executions, variables


@error_fields("{topic}[{partition}]@{offset} (execution {execution_id})")
class RecordFailed(Exception):
    """Internal: folding one record raised an unexpected error (a bug); names the record."""

    topic: str
    partition: int
    offset: int
    execution_id: str | None


def _safe_step(fn: Any, state: Any, event: Envelope) -> tuple[Step, str | None]:
    """Run a fold step; an error of ours (corrupt user data) refuses the event instead."""
    try:
        result: Step = fn(state, event)
        return result, None
    except OrchestratorStateError as exc:
        return Step(state, Outcome.REJECTED, f"{type(exc).__name__}: {exc}"), type(exc).__name__


_OUTCOME_TEXT = {outcome: outcome.value for outcome in Outcome}

UNSTORABLE = "UnstorableEvent"
"""``error_class`` of an event whose rows PostgreSQL refused (see ``refused``)."""


def fold_batch(
    batch: Iterable[DecodedRecord],
    executions: Mapping[str, ExecutionEntry | None],
    variables: Mapping[VarKey, SharedVariable | None],
    refused: Mapping[tuple[str, int, int], str] | None = None,
) -> BatchChanges:
    """Fold ``batch`` (records of each partition in offset order) on top of the loaded
    states; ``executions``/``variables`` must hold every key of :func:`touched_keys`
    (``None`` when there is no row yet).

    ``refused`` names records (by position) that PostgreSQL could not store: they are
    refused as the fold refuses an event (dead letter; the sequence stays free) and
    archived without their payload."""
    out = BatchChanges()
    # Copies: the caller's entries (a cache) must not change if the transaction fails.
    live: dict[str, ExecutionEntry | None] = {
        k: None if v is None else v.copy() for k, v in executions.items()
    }
    shared: dict[VarKey, SharedVariable | None] = dict(variables)
    with parsing_once():  # the fold and the archive row read each user data value
        for item in batch:
            rec = item.record
            pos = rec.position
            out.next_offsets[(pos.topic, pos.partition)] = pos.offset + 1
            event = item.envelope
            if event is None:
                error = item.error
                out.dead_letters.append(
                    DeadLetter(
                        topic=pos.topic,
                        partition=pos.partition,
                        offset=pos.offset,
                        key=rec.key,
                        raw=rec.value,
                        reason=error.reason if error is not None else "not decoded",
                        error_class=type(error).__name__ if error is not None else "DecodeError",
                    )
                )
                continue
            forced = (
                None if refused is None else refused.get((pos.topic, pos.partition, pos.offset))
            )
            try:
                if event.event_type in SHARED_EVENT_TYPES:
                    _fold_shared(out, shared, rec, event, forced)
                else:
                    _fold_execution(out, live, rec, event, forced)
            except Exception as exc:
                raise RecordFailed(
                    pos.topic, pos.partition, pos.offset, event.execution_id
                ) from exc
    return out


def _dead_letter(rec: RawRecord, event: Envelope, reason: str, error_class: str) -> DeadLetter:
    return DeadLetter(
        topic=rec.position.topic,
        partition=rec.position.partition,
        offset=rec.position.offset,
        key=rec.key,
        raw=rec.value,
        reason=reason,
        error_class=error_class,
        execution_id=event.execution_id,
        event_type=event.event_type,
    )


def _refuse_execution_event(state: ExecutionState | None, event: Envelope, reason: str) -> Step:
    """What ``step`` does with an event it rejects: nothing changes, the sequence stays
    free for the genuine event (design §3)."""
    return Step(state, Outcome.REJECTED, reason)


def _payload_text(event: Envelope, forced: str | None) -> str | None:
    if forced is not None:
        return rm.dumps({"$unstorable": forced})
    return rm.dumps(archived_payload_json(event.payload))  # checkpoint data: in raw only


def _fold_execution(
    out: BatchChanges,
    live: dict[str, ExecutionEntry | None],
    rec: RawRecord,
    event: Envelope,
    forced: str | None = None,
) -> None:
    # A hot path (every event of the log): attributes read once into locals.
    execution_id = event.execution_id or ""
    entry = live.get(execution_id)
    before = None if entry is None else entry.state
    if forced is None:
        result, error_class = _safe_step(step, before, event)
    else:
        result, error_class = _refuse_execution_event(before, event, forced), UNSTORABLE
    after: ExecutionState | None = result.state
    outcome = result.outcome
    pos = rec.position
    topic, partition, offset = pos.topic, pos.partition, pos.offset
    out.events.append(
        (
            topic,
            partition,
            offset,
            execution_id,
            event.pipeline_id,
            event.sequence,
            event.epoch,
            event.event_id,
            event.event_type,
            event.occurred_at,
            _OUTCOME_TEXT[outcome],
            result.reason,
            _payload_text(event, forced),
            rec.value,
        )
    )
    if outcome is Outcome.REJECTED:
        out.dead_letters.append(
            _dead_letter(rec, event, result.reason or "rejected", error_class or "FoldRejected")
        )
    if after is None:
        return
    tp = (topic, partition)
    if entry is None:
        entry = ExecutionEntry(state=after, event_count=0, tp=tp)
        live[execution_id] = entry
        out.new_executions.add(execution_id)
        for task_id in after.tasks:
            out.task_updates[(execution_id, task_id)] = event.occurred_at
    elif after is not before:
        old_tasks = before.tasks  # type: ignore[union-attr]
        if after.tasks is not old_tasks:
            for task_id, task in after.tasks.items():
                if old_tasks.get(task_id) is not task:
                    out.task_updates[(execution_id, task_id)] = event.occurred_at
        entry.state = after
    entry.event_count += 1
    entry.last_position = (topic, partition, offset)
    entry.tp = tp
    out.executions[execution_id] = entry
    if outcome is Outcome.APPLIED:
        out.changed_executions[execution_id] = (topic, partition, offset)
        payload = event.payload
        if isinstance(payload, CheckpointSaved | CheckpointsDeleted):
            _checkpoint_rows(out.checkpoints, before, after, event)


def _checkpoint_rows(
    rows: dict[tuple[str, int], rm.Row],
    before: ExecutionState | None,
    after: ExecutionState,
    event: Envelope,
) -> None:
    """The ``checkpoints`` rows of an applied save or delete: the state's list lives
    there (``readmodel.live_checkpoints``). A save is a new row, keyed like its event; a
    delete withdraws the rows of the saves it took off the list (one row per key and
    batch: a withdrawal amends a row the batch made)."""
    execution_id = after.execution_id
    if isinstance(event.payload, CheckpointSaved):
        rows[(execution_id, event.sequence or 0)] = rm.checkpoint_row(after, event)
        return
    kept = {ref.sequence for ref in after.checkpoints}
    for ref in () if before is None else before.checkpoints:
        if ref.sequence not in kept:
            key = (execution_id, ref.sequence)
            made = rows.get(key)
            rows[key] = (
                rm.checkpoint_ref_row(after, ref, event.occurred_at)
                if made is None
                else (*made[:-1], event.occurred_at)
            )


def _fold_shared(
    out: BatchChanges,
    shared: dict[VarKey, SharedVariable | None],
    rec: RawRecord,
    event: Envelope,
    forced: str | None = None,
) -> None:
    p: Any = event.payload
    key: VarKey = (p.namespace, p.name)
    current = shared.get(key)
    ns = NamespaceState(namespace=p.namespace, variables={p.name: current} if current else {})
    if forced is None:
        result, error_class = _safe_step(step_shared, ns, event)
    else:
        result, error_class = Step(ns, Outcome.REJECTED, forced), UNSTORABLE
    out.shared_events.append(
        (
            rec.position.topic,
            rec.position.partition,
            rec.position.offset,
            p.namespace,
            p.name,
            p.version,
            event.event_id,
            event.event_type,
            event.occurred_at,
            result.outcome.value,
            result.reason,
            _payload_text(event, forced),
            rec.value,
        )
    )
    if result.outcome is Outcome.REJECTED:
        out.dead_letters.append(
            _dead_letter(rec, event, result.reason or "rejected", error_class or "FoldRejected")
        )
    if result.outcome is Outcome.APPLIED:
        var = result.state.variables[p.name]
        shared[key] = var
        out.variables[key] = var
        pos = rec.position
        out.changed_namespaces[p.namespace] = (pos.topic, pos.partition, pos.offset)
