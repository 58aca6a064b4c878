"""The timeline of one execution (pure), and its state at an event (from the archive).

:func:`build_timeline` turns the archived events of an execution (rows of
``execution_events``: sequence, type, time, the fold's verdict, payload) into what the
timeline page draws: each task's attempts as spans, waits, retries and checkpoints,
the execution's status phases and owner changes, and a compact event list for the
slider. Only applied events shape the spans; every event is listed.

:class:`HistoryStateSource` answers "the state at sequence s" through the history
service (``events.History``): from the first event by default, from the snapshot
before it when a process that has snapshots (the orchestrator layer) installs one with
:func:`set_state_source`; both answer the same state by design §5.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import asyncpg
from fastapi import FastAPI

from orchestrator.events import (
    Envelope,
    ExecutionState,
    History,
    NothingToRestore,
    Outcome,
    Position,
    SnapshotBases,
    Target,
)
from orchestrator.projections.archive import PostgresEventArchive
from orchestrator.projections.settings import ReadModelTables

EVENT_LIST_LIMIT = 20_000
"""Events listed for the slider; a longer history lists its first applied ones only (the
page still shows the state at any sequence)."""

_PHASE = {
    "ExecutionCreated": "initialized",
    "ExecutionValidationStarted": "validating",
    "ExecutionValidationSucceeded": "running",
    "ExecutionValidationFailed": "failed",
    "ExecutionPaused": "paused",
    "ExecutionResumed": "running",
    "ExecutionCompleted": "completed",
    "ExecutionFailed": "failed",
    "ExecutionCancelled": "cancelled",
}


def _iso(when: datetime | None) -> str | None:
    return None if when is None else when.isoformat()


class _Spans:
    """Attempts of one task, opened by TaskStarted and closed by what ends them."""

    def __init__(self, task_id: str, depends_on: list[str]) -> None:
        self.task_id = task_id
        self.depends_on = depends_on
        self.status = "pending"
        self.spans: list[dict[str, Any]] = []
        self.scheduled: list[dict[str, Any]] = []
        self.retries: list[dict[str, Any]] = []
        self.open: dict[str, Any] | None = None

    def close(self, at: str, seq: int | None, outcome: str, error: str | None = None) -> None:
        if self.open is not None:
            self.open.update(end=at, end_seq=seq, outcome=outcome, error=error)
            self.open = None

    def apply(self, kind: str, at: str, seq: int | None, p: Mapping[str, Any]) -> None:
        if kind == "TaskScheduled":
            self.status = "scheduled"
            self.scheduled.append({"at": at, "seq": seq})
        elif kind == "TaskStarted":
            self.close(at, seq, "interrupted")
            self.status = "running"
            self.open = {"attempt": p.get("attempt"), "start": at, "start_seq": seq}
            self.open.update(end=None, end_seq=None, outcome="running", error=None)
            self.spans.append(self.open)
        elif kind == "TaskCompleted":
            self.status = "completed"
            self.close(at, seq, "completed")
        elif kind == "TaskFailed":
            self.status = "failed"
            self.close(at, seq, "failed", p.get("error"))
        elif kind == "TaskRetryScheduled":
            self.status = "retrying"
            self.retries.append(
                {"at": at, "seq": seq, "attempt": p.get("attempt"), "delay": p.get("delay_seconds")}
            )
        elif kind == "TaskSkipped":
            self.status = "skipped"
            self.close(at, seq, "skipped", p.get("reason"))

    def as_json(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "depends_on": self.depends_on,
            "status": self.status,
            "spans": self.spans,
            "scheduled": self.scheduled,
            "retries": self.retries,
        }


def build_timeline(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The page's data from archive rows in log order (columns ``sequence``,
    ``event_type``, ``occurred_at``, ``outcome``, ``epoch``, ``payload`` (decoded),
    ``partition``, ``offset``)."""
    tasks: dict[str, _Spans] = {}
    phases: list[dict[str, Any]] = []
    owners: list[dict[str, Any]] = []
    checkpoints: list[dict[str, Any]] = []
    events: list[list[Any]] = []
    applied: list[list[Any]] = []
    first: str | None = None
    last: str | None = None
    count = 0
    for row in rows:
        count += 1
        kind: str = row["event_type"]
        at = row["occurred_at"].isoformat()
        seq = row["sequence"]
        p: Mapping[str, Any] = row["payload"] or {}
        subject = p.get("task_id") or p.get("name") or p.get("node_id")
        item = [seq, kind, subject, at, row["outcome"], row["offset"]]
        if len(events) < EVENT_LIST_LIMIT:
            events.append(item)
        if row["outcome"] != "applied":
            continue
        applied.append(item)
        first = first or at
        last = at
        if kind == "ExecutionCreated":
            for spec in p.get("tasks") or ():
                tasks[spec["task_id"]] = _Spans(spec["task_id"], list(spec.get("depends_on") or ()))
        if kind in _PHASE:
            if phases:
                phases[-1]["end"] = at
            phases.append({"status": _PHASE[kind], "start": at, "end": None, "seq": seq})
        elif kind == "ExecutionOwnershipTaken":
            owners.append({"at": at, "epoch": p.get("epoch"), "node": p.get("node_id")})
        elif kind == "CheckpointSaved":
            checkpoints.append(
                {
                    "at": at,
                    "seq": seq,
                    "name": p.get("name"),
                    "task_id": p.get("task_id"),
                    "checkpoint_id": p.get("checkpoint_id"),
                    "progress": p.get("progress"),
                }
            )
        elif kind.startswith("Task") and p.get("task_id") in tasks:
            tasks[p["task_id"]].apply(kind, at, seq, p)
    truncated = count > len(events)
    return {
        "start": first,
        "end": last,
        "tasks": [t.as_json() for t in tasks.values()],
        "phases": phases,
        "owners": owners,
        "checkpoints": checkpoints,
        "events": applied[:EVENT_LIST_LIMIT] if truncated else events,
        "events_total": count,
        "events_truncated": truncated,
    }


# --- the state at an event -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StateAt:
    """The state after the event at a sequence, the state before it, and that event."""

    state: ExecutionState
    before: ExecutionState | None
    event: Envelope | None
    position: Position | None
    source: str


class StateSource(Protocol):
    """Answers the state of an execution at a sequence (``None``: latest)."""

    async def state_at(
        self, pool: asyncpg.Pool, execution_id: str, sequence: int | None
    ) -> StateAt | None:
        """``None`` when the execution has no events."""
        ...


class HistoryStateSource:
    """The state at an event from the history service: the fold of the archive from the
    newest snapshot that ``snapshots(pool)`` finds before it (none: the first event)."""

    def __init__(
        self,
        tables: ReadModelTables,
        snapshots: Callable[[asyncpg.Pool], SnapshotBases] | None = None,
    ) -> None:
        self.tables = tables
        self.snapshots = snapshots
        self.label = "archive" if snapshots is None else "snapshot+archive"

    async def state_at(
        self, pool: asyncpg.Pool, execution_id: str, sequence: int | None
    ) -> StateAt | None:
        bases = None if self.snapshots is None else self.snapshots(pool)
        history = History(PostgresEventArchive(pool, tables=self.tables), snapshots=bases)
        try:
            end = (await history.state(execution_id, Target(sequence=sequence))).state
        except NothingToRestore:
            return None
        last = end.last_sequence
        answer = StateAt(end, None, None, None, self.label)
        steps = history.steps(execution_id, Target(sequence=last), start_sequence=last - 1)
        async for item in steps:
            if item.event.sequence == last and item.outcome is Outcome.APPLIED:
                answer = StateAt(end, item.before, item.event, item.position, self.label)
        return answer


def set_state_source(app: FastAPI, source: StateSource) -> None:
    """Serve ``GET /executions/{id}/state`` from ``source`` (e.g. snapshots + archive)."""
    app.state.state_source = source


def state_source(app: FastAPI, tables: ReadModelTables) -> StateSource:
    """The app's state source: the one installed, else the history without snapshots."""
    source: StateSource | None = getattr(app.state, "state_source", None)
    return source if source is not None else HistoryStateSource(tables)
