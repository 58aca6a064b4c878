"""Rich views of states, history steps and debugging reports (the CLI prints these).

Each function returns a renderable; nothing here reads or writes anything else, so
the same views serve the CLI and a notebook (``rich.print(state_view(state))``).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from orchestrator.debug.bottlenecks import BottleneckReport
from orchestrator.debug.consistency import ConsistencyReport
from orchestrator.debug.diff import Change, to_jsonable
from orchestrator.debug.folding import Mismatch
from orchestrator.debug.replay import Replayed, ReplayStep
from orchestrator.debug.trace import TraceEntry
from orchestrator.events import ExecutionState

STATUS_STYLE = {
    "initialized": "white",
    "validating": "cyan",
    "running": "bold blue",
    "paused": "yellow",
    "completed": "bold green",
    "failed": "bold red",
    "cancelled": "magenta",
    "pending": "dim",
    "scheduled": "cyan",
    "retrying": "yellow",
    "skipped": "magenta",
}
OUTCOME_STYLE = {"applied": "green", "duplicate": "dim", "stale_epoch": "yellow", "rejected": "red"}
_CHECKPOINTS_SHOWN = 10


def short(value: Any, width: int = 60) -> str:
    """A value as compact JSON, cut to ``width`` characters."""
    text = json.dumps(to_jsonable(value), default=str, ensure_ascii=False, separators=(",", ":"))
    return text if len(text) <= width else text[: width - 1] + "…"


def _time(when: datetime | None) -> str:
    return "-" if when is None else when.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]


def _clock(when: datetime | None) -> str:
    return "-" if when is None else when.strftime("%H:%M:%S.%f")[:-3]


def _status(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


def state_view(state: ExecutionState, *, subtitle: str | None = None) -> RenderableType:
    """An execution's state: summary, tasks, checkpoints, outputs."""
    head = Table.grid(padding=(0, 2))
    head.add_column(style="bold")
    head.add_column()
    head.add_row("pipeline", state.pipeline_id)
    head.add_row("status", _status(state.status))
    head.add_row("sequence", f"{state.last_sequence} (epoch {state.epoch}, owner {state.owner})")
    filled = round(state.progress * 24)
    head.add_row(
        "progress",
        Text("█" * filled, style="green")
        + Text("░" * (24 - filled), style="dim")
        + Text(f" {state.progress:.0%}"),
    )
    head.add_row("current task", state.current_task or "-")
    head.add_row("completed", ", ".join(state.completed_tasks) or "-")
    head.add_row("pending", ", ".join(state.pending_tasks) or "-")
    head.add_row(
        "times",
        f"created {_time(state.created_at)}  started {_time(state.started_at)}  "
        f"updated {_time(state.updated_at)}  completed {_time(state.completed_at)}",
    )
    if state.forked_from:
        head.add_row(
            "lineage",
            f"forked from {state.forked_from} at sequence {state.fork_sequence} "
            f"(root {state.root_execution_id})",
        )
    if state.context.get("user_id"):
        head.add_row("user", str(state.context["user_id"]))
    if state.error:
        head.add_row("error", Text(state.error, style="red"))
    if state.outputs is not None:
        head.add_row("outputs", short(state.outputs, 100))
    parts: list[RenderableType] = [head]
    if state.tasks:
        parts.append(_tasks_table(state))
    if state.checkpoints:
        parts.append(_checkpoints_table(state))
    return Panel(
        Group(*parts),
        title=f"[bold]{state.execution_id}[/]",
        subtitle=subtitle,
        border_style=STATUS_STYLE.get(state.status, "white"),
    )


def _tasks_table(state: ExecutionState) -> Table:
    table = Table("task", "status", "attempts", "depends on", "started", "completed", "duration")
    table.add_column("error / outputs", overflow="fold")
    for task in state.tasks.values():
        duration = task.execution_details.get("duration")
        if task.error:
            detail = Text(task.error, style="red")
        else:
            detail = Text("-" if task.outputs is None else short(task.outputs, 40))
        table.add_row(
            task.task_id,
            _status(task.status),
            str(task.attempts),
            ", ".join(task.depends_on) or "-",
            _clock(task.started_at),
            _clock(task.completed_at),
            "-" if duration is None else f"{duration:.2f}s",
            detail,
        )
    return table


def _checkpoints_table(state: ExecutionState) -> Table:
    refs = state.checkpoints[-_CHECKPOINTS_SHOWN:]
    hidden = len(state.checkpoints) - len(refs)
    title = f"checkpoints (last {len(refs)} of {len(state.checkpoints)})" if hidden else None
    table = Table("sequence", "name", "task", "progress", "saved", "id", title=title)
    for ref in refs:
        table.add_row(
            str(ref.sequence),
            ref.name,
            ref.task_id or "-",
            "-" if ref.progress is None else f"{ref.progress:.0%}",
            _time(ref.timestamp),
            ref.checkpoint_id,
        )
    return table


def provenance(replayed: Replayed) -> str:
    """Where a replayed state came from, in one line."""
    position = replayed.position.token() if replayed.position else "-"
    start = (
        f"snapshot {replayed.snapshot_key} + {replayed.events_folded} event(s)"
        if replayed.snapshot_key
        else f"{replayed.events_folded} event(s) from the first"
    )
    return (
        f"{replayed.target.describe()} from the {replayed.source}: {start}; "
        f"last position {position}"
    )


def _changes(changes: Iterable[Change], indent: str = "    ") -> list[Text]:
    lines = []
    for change in changes:
        line = Text(indent)
        line.append(change.path, style="bold")
        if change.old is None and change.path == "<root>":
            line.append(" created", style="green")
        else:
            line.append(": ")
            line.append(short(change.old), style="red")
            line.append(" → ")
            line.append(short(change.new), style="green")
        lines.append(line)
    return lines


def _event_line(
    sequence: int | None,
    event_type: str,
    subject: str | None,
    outcome: str,
    reason: str | None,
    occurred_at: datetime,
    position: str,
) -> Text:
    line = Text()
    line.append(f"#{sequence if sequence is not None else '-':<6}", style="bold cyan")
    line.append(f" {event_type}", style="bold")
    if subject:
        line.append(f" {subject}")
    line.append(f"  {outcome}", style=OUTCOME_STYLE.get(outcome, ""))
    if reason:
        line.append(f" ({reason})", style=OUTCOME_STYLE.get(outcome, ""))
    line.append(f"  {_time(occurred_at)}  {position}", style="dim")
    return line


def step_view(item: ReplayStep) -> RenderableType:
    """One event and the state changes it made."""
    subject = getattr(item.event.payload, "task_id", None) or getattr(
        item.event.payload, "name", None
    )
    head = _event_line(
        item.event.sequence,
        item.event.event_type,
        subject,
        item.outcome.value,
        item.reason,
        item.event.occurred_at,
        item.position.token(),
    )
    return Group(head, *_changes(item.changes()))


def trace_view(entry: TraceEntry) -> RenderableType:
    """One trace entry and its state changes."""
    subject = entry.payload.get("task_id") or entry.payload.get("name")
    head = _event_line(
        entry.sequence,
        entry.event_type,
        subject,
        entry.outcome,
        entry.reason,
        entry.occurred_at,
        entry.position.token(),
    )
    return Group(head, *_changes(entry.changes))


def step_json(item: ReplayStep) -> dict[str, Any]:
    """One event and its changes as a JSON object (``--diff --json``: one per line)."""
    return TraceEntry.of(item).as_json()


def consistency_view(report: ConsistencyReport) -> RenderableType:
    """The check's findings; a green line when there are none."""
    scope = f"pipeline {report.pipeline_id}" if report.pipeline_id else "all pipelines"
    summary = (
        f"{scope}: {report.executions_checked} execution(s), {report.events_folded} event(s) "
        f"from the {report.source}, projection {report.projection}"
    )
    if report.consistent:
        return Text(f"consistent — {summary}", style="bold green")
    parts: list[RenderableType] = [
        Text(f"INCONSISTENT: {report.problems} problem(s) — {summary}", style="bold red")
    ]
    by_execution: dict[str, list[Mismatch]] = {}
    for m in report.mismatches:
        by_execution.setdefault(m.execution_id, []).append(m)
    for execution_id, mismatches in by_execution.items():
        table = Table("table", "task", "field", "read model", "fold", title_justify="left")
        table.title = f"mismatches of {execution_id}"
        for m in mismatches:
            table.add_row(
                m.table, m.task_id or "-", m.field, short(m.read_model, 40), short(m.fold, 40)
            )
        parts.append(table)
    for title, ids in (
        ("in the history, not in the read model", report.missing_in_read_model),
        ("in the read model, not in the history", report.missing_in_history),
    ):
        if ids:
            parts.append(Text(f"{title}: {', '.join(ids)}", style="yellow"))
    if report.sequence_gaps:
        table = Table("execution", "expected", "got", "at", "events refused", title="sequence gaps")
        for g in report.sequence_gaps:
            table.add_row(
                g.execution_id, str(g.expected), str(g.got), g.position.token(), str(g.refused)
            )
        parts.append(table)
    if report.dead_letters:
        table = Table(
            "id", "position", "execution", "event", "error", "reason", title="dead letters"
        )
        for d in report.dead_letters:
            table.add_row(
                str(d.id),
                f"{d.topic}:{d.partition}:{d.offset}",
                d.execution_id or "-",
                d.event_type or "-",
                d.error_class,
                d.reason,
            )
        parts.append(table)
    return Group(*parts)


def bottlenecks_view(report: BottleneckReport) -> RenderableType:
    """Slowest tasks, most retried, longest waits, consumer lag."""
    parts: list[RenderableType] = [Text(f"{report.executions} execution(s) analysed", style="bold")]
    slow = Table("task", "runs", "p50 s", "p95 s", "max s", title="slowest tasks")
    for t in report.slowest_tasks:
        slow.add_row(t.task_id, str(t.runs), f"{t.p50:.2f}", f"{t.p95:.2f}", f"{t.max:.2f}")
    retried = Table("task", "retries", "executions", title="most retried tasks")
    for r in report.most_retried:
        retried.add_row(r.task_id, str(r.retries), str(r.executions))
    waits = Table("execution", "task", "waited s", title="longest waits (ready → started)")
    for w in report.longest_waits:
        waits.add_row(w.execution_id, w.task_id, f"{w.seconds:.2f}")
    lag = Table("partition", "lag (events)", title="consumer lag (Kafka end − projection offset)")
    for partition, behind in report.consumer_lag.items():
        lag.add_row(partition, Text(str(behind), style="red" if behind else "green"))
    parts += [slow, retried, waits, lag]
    return Group(*parts)
