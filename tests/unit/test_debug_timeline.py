"""The timeline page's data: each task's attempts as spans, retries, phases, owners.

``build_timeline`` reads archive rows (the fold's verdict included); only applied
events shape the picture, every event is listed for the slider.
"""

from __future__ import annotations

import random
from dataclasses import replace
from typing import Any

from orchestrator.events import catalogue as c
from orchestrator.events.envelope import Envelope
from orchestrator.events.fold import step
from orchestrator.events.simulate import HistoryWriter
from orchestrator.events.state import ExecutionState
from orchestrator.projections import readmodel as rm
from orchestrator.projections.api import _timeline
from orchestrator.projections.api._timeline import build_timeline


def _rows(events: list[Envelope]) -> list[dict[str, Any]]:
    state: ExecutionState | None = None
    rows = []
    for offset, event in enumerate(events):
        result = step(state, event)
        state = result.state
        rows.append(
            {
                "sequence": event.sequence,
                "event_type": event.event_type,
                "occurred_at": event.occurred_at,
                "outcome": result.outcome.value,
                "epoch": event.epoch,
                "payload": rm.payload_json(event),
                "partition": 0,
                "offset": offset,
            }
        )
    return rows


def _history() -> list[Envelope]:
    w = HistoryWriter("exec_t", "p", random.Random(1))
    w.emit(
        c.ExecutionCreated(
            pipeline_id="p",
            tasks=(c.TaskSpec(task_id="a"), c.TaskSpec(task_id="b", depends_on=("a",))),
        )
    )
    w.emit(c.ExecutionValidationStarted())
    w.emit(c.ExecutionValidationSucceeded())
    w.emit(c.TaskScheduled(task_id="a"))
    w.emit(c.TaskStarted(task_id="a", attempt=1))
    w.emit(c.CheckpointSaved(checkpoint_id="cp1", name="half", task_id="a"))
    w.emit(c.TaskFailed(task_id="a", attempt=1, error="rate limited"))
    w.emit(c.TaskRetryScheduled(task_id="a", attempt=2, delay_seconds=1.5))
    w.emit(c.TaskStarted(task_id="a", attempt=2))
    w.take_over()
    w.emit(c.TaskStarted(task_id="a", attempt=3))  # the new owner restarts it
    w.emit(c.TaskCompleted(task_id="a"))
    w.emit(c.ExecutionPaused(reason="operator"))
    w.emit(c.ExecutionResumed())
    w.emit(c.TaskScheduled(task_id="b"))
    w.emit(c.TaskStarted(task_id="b", attempt=1))
    return w.events


def test_attempts_become_spans_with_their_outcomes() -> None:
    events = _history()
    zombie = replace(events[-1], sequence=events[-1].sequence, epoch=1, event_id="zombie")
    timeline = build_timeline(_rows([*events, zombie]))
    a, b = timeline["tasks"]
    assert [s["outcome"] for s in a["spans"]] == ["failed", "interrupted", "completed"]
    assert [s["attempt"] for s in a["spans"]] == [1, 2, 3]
    assert a["spans"][0]["error"] == "rate limited" and a["status"] == "completed"
    assert [(r["attempt"], r["delay"]) for r in a["retries"]] == [(2, 1.5)]
    assert b["status"] == "running" and b["spans"][0]["end"] is None and b["depends_on"] == ["a"]
    assert [p["status"] for p in timeline["phases"]] == [
        "initialized",
        "validating",
        "running",
        "paused",
        "running",
    ]
    assert [(o["epoch"], o["node"]) for o in timeline["owners"]] == [(2, "node-2")]
    assert [cp["name"] for cp in timeline["checkpoints"]] == ["half"]
    # The zombie write is listed (with its verdict) but draws nothing.
    assert timeline["events"][-1][4] == "stale_epoch"
    assert timeline["events_total"] == len(events) + 1 and not timeline["events_truncated"]


def test_a_long_history_lists_its_applied_events_only(monkeypatch: Any) -> None:
    monkeypatch.setattr(_timeline, "EVENT_LIST_LIMIT", 5)
    timeline = build_timeline(_rows(_history()))
    assert timeline["events_truncated"] and len(timeline["events"]) == 5
    assert all(item[4] == "applied" for item in timeline["events"])
