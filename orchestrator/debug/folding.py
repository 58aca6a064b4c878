"""The fold of one execution with the processor's bookkeeping, and row comparison (pure).

``check_consistency`` must compare the read model with exactly the rows the processor
would write for the fold of the history: the same state (``events.fold.step``), the
same ``event_count`` and last position, and each task's ``updated_at`` (when the fold
last changed it), built with the processor's own row builders
(``projections.readmodel``). ``tests/unit/test_debug_consistency.py`` pins this to the
processor's pure core.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from orchestrator.events import (
    CheckpointRef,
    Envelope,
    ExecutionState,
    OrchestratorStateError,
    Outcome,
    Position,
    Step,
    step,
)
from orchestrator.projections import (
    PIPELINE_COLUMNS,
    TASK_COLUMNS,
    Row,
    live_checkpoints,
    task_row,
)
from orchestrator.projections import pipeline_row as rm_pipeline_row


@dataclass(frozen=True, slots=True)
class Mismatch:
    """A read-model value that differs from the fold of the history."""

    execution_id: str
    table: str
    task_id: str | None
    field: str
    read_model: Any
    fold: Any


@dataclass(frozen=True, slots=True)
class SequenceGap:
    """The log jumps from ``expected - 1`` to ``got``: ``refused`` events after it were
    not applied (each was dead-lettered)."""

    execution_id: str
    expected: int
    got: int | None
    position: Position
    refused: int


@dataclass(slots=True)
class FoldedExecution:
    """One execution folded as the processor folds it (``projections._batch``): the
    state, ``event_count``, the last position, and when each task last changed."""

    execution_id: str
    state: ExecutionState | None = None
    event_count: int = 0
    last_position: tuple[str, int, int] | None = None
    task_updated: dict[str, datetime | None] = field(default_factory=dict)
    gaps: list[list[Any]] = field(default_factory=list)

    def add(self, position: Position, event: Envelope) -> Step:
        before = self.state
        try:
            result = step(before, event)
        except OrchestratorStateError as exc:  # corrupt user data: refused, as the processor does
            result = Step(before, Outcome.REJECTED, f"{type(exc).__name__}: {exc}")
        self._note_gap(position, event, result)
        after: ExecutionState | None = result.state
        if after is None:
            return result
        if before is None:
            self.task_updated = {task_id: event.occurred_at for task_id in after.tasks}
        elif after is not before and after.tasks is not before.tasks:
            for task_id, task in after.tasks.items():
                if before.tasks.get(task_id) is not task:
                    self.task_updated[task_id] = event.occurred_at
        self.state = after
        self.event_count += 1
        self.last_position = (position.topic, position.partition, position.offset)
        return result

    def _note_gap(self, position: Position, event: Envelope, result: Step) -> None:
        if result.outcome is not Outcome.REJECTED:
            return
        reason = result.reason or ""
        state = self.state
        if state is None and event.sequence is not None:
            expected = 1
        elif state is not None and reason.startswith("sequence gap"):
            expected = state.last_sequence + 1
        else:
            return
        if self.gaps and self.gaps[-1][0] == expected:
            self.gaps[-1][3] += 1
        else:
            self.gaps.append([expected, event.sequence, position, 1])

    def sequence_gaps(self) -> list[SequenceGap]:
        return [SequenceGap(self.execution_id, e, g, p, n) for e, g, p, n in self.gaps]

    def expected_rows(self) -> tuple[Row, dict[str, Row]]:
        """The ``pipeline_states`` row and the ``task_states`` rows (by task id)."""
        assert self.state is not None
        s = self.state
        pipeline = rm_pipeline_row(
            s, event_count=self.event_count, last_position=self.last_position
        )
        tasks = {
            t.task_id: task_row(s, t, i, self.task_updated.get(t.task_id))
            for i, t in enumerate(s.tasks.values())
        }
        return pipeline, tasks


def _listed(ref: CheckpointRef) -> tuple[str, str, int]:
    return ref.checkpoint_id, ref.name, ref.sequence


def _compare_checkpoints(
    eid: str, state: ExecutionState, rows: Iterable[Mapping[str, Any]]
) -> list[Mismatch]:
    """The state's checkpoint list against its live ``checkpoints`` rows."""
    have = [_listed(ref) for ref in live_checkpoints(rows)]
    want = [_listed(ref) for ref in state.checkpoints]
    return [] if have == want else [Mismatch(eid, "checkpoints", None, "<live>", have, want)]


def _jsonb(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value


def compare_row(
    columns: Sequence[tuple[str, str]], expected: Row, actual: Mapping[str, Any]
) -> list[tuple[str, Any, Any]]:
    """``(column, read-model value, fold value)`` for every column that differs."""
    out: list[tuple[str, Any, Any]] = []
    for (name, kind), want in zip(columns, expected, strict=True):
        have = actual[name]
        if kind == "jsonb":
            want, have = _jsonb(want), _jsonb(have)
        if have != want:
            out.append((name, have, want))
    return out


def compare_execution(
    folded: FoldedExecution,
    pipeline_row: Mapping[str, Any] | None,
    task_rows: Iterable[Mapping[str, Any]],
    checkpoint_rows: Iterable[Mapping[str, Any]] | None = None,
) -> list[Mismatch]:
    """Every difference between an execution's read-model rows and its fold (its
    checkpoint list too, when its ``checkpoints`` rows are given)."""
    eid = folded.execution_id
    want_pipeline, want_tasks = folded.expected_rows()
    out: list[Mismatch] = []
    if checkpoint_rows is not None and folded.state is not None:
        out += _compare_checkpoints(eid, folded.state, checkpoint_rows)
    if pipeline_row is not None:
        for name, have, want in compare_row(PIPELINE_COLUMNS, want_pipeline, pipeline_row):
            out.append(Mismatch(eid, "pipeline_states", None, name, have, want))
    seen: set[str] = set()
    for row in task_rows:
        task_id = row["task_id"]
        seen.add(task_id)
        want = want_tasks.get(task_id)
        if want is None:
            out.append(Mismatch(eid, "task_states", task_id, "<row>", "present", "absent"))
            continue
        for name, have, w in compare_row(TASK_COLUMNS, want, row):
            out.append(Mismatch(eid, "task_states", task_id, name, have, w))
    for task_id in want_tasks.keys() - seen:
        out.append(Mismatch(eid, "task_states", task_id, "<row>", "absent", "present"))
    return out
