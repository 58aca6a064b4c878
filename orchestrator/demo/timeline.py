"""The demo's printout: an execution's history as a timeline, and its final state."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
from rich.console import Console
from rich.table import Table

from orchestrator.events import ExecutionState
from orchestrator.projections import PostgresEventArchive, payload_json


@dataclass(frozen=True, slots=True)
class Entry:
    at: datetime
    node: str
    event: str
    payload: dict[str, Any]
    epoch: int


async def history(pool: asyncpg.Pool, events_table: str, execution_id: str) -> list[Entry]:
    """The execution's applied events, in log order, from the projection's archive."""
    archive = PostgresEventArchive(pool, events_table=events_table)
    return [
        Entry(
            at=a.envelope.occurred_at,
            node=a.envelope.producer,
            event=a.envelope.event_type,
            payload=payload_json(a.envelope),
            epoch=a.envelope.epoch,
        )
        for a in await archive.applied(execution_id)
    ]


def _describe(entry: Entry, last_checkpoint: dict[str, str]) -> tuple[str, str]:
    p, e = entry.payload, entry.event
    task = p.get("task_id")
    if e == "ExecutionCreated":
        return "execution created", f"{len(p.get('tasks', []))} tasks"
    if e == "ExecutionOwnershipTaken":
        return "[bold magenta]↻ taken over[/]", f"epoch {p['epoch']} by {p['node_id']}"
    if e == "TaskStarted":
        attempt = p["attempt"]
        if attempt > 1:
            since = last_checkpoint.get(str(task))
            note = f"from checkpoint {since}" if since else "from the start"
            return f"[bold yellow]▶ {task}[/]", f"attempt {attempt}, resumed {note}"
        return f"▶ {task}", "attempt 1"
    if e == "TaskCompleted":
        details = p.get("details") or {}
        bits = [f"{details.get('duration') or 0:.2f}s"]
        if details.get("tokens_used"):
            bits.append(f"{details['tokens_used']} tokens, {details['model_calls']} model calls")
        return f"[green]✓ {task}[/]", ", ".join(bits)
    if e == "TaskFailed":
        return f"[red]✗ {task}[/]", f"attempt {p['attempt']}: {p['error']}"
    if e == "TaskRetryScheduled":
        return f"↺ {task}", f"attempt {p['attempt']} in {p['delay_seconds']:.2f}s"
    if e == "CheckpointSaved":
        if task:
            last_checkpoint[task] = p["name"]
        return "[cyan]◆ checkpoint[/]", f"{p['name']}" + (f" ({task})" if task else "")
    if e == "TaskScheduled":
        return f"· {task} scheduled", ""
    return _LIFECYCLE.get(e, (e, ""))


_LIFECYCLE = {
    "ExecutionValidationStarted": ("validating", "initialized → validating"),
    "ExecutionValidationSucceeded": ("validated", "validating → running"),
    "ExecutionCompleted": ("[bold green]■ completed[/]", "running → completed"),
    "ExecutionFailed": ("[bold red]■ failed[/]", "running → failed"),
    "ExecutionResumed": ("resumed", "→ running"),
}


def print_timeline(
    console: Console, entries: list[Entry], *, killed_at: datetime | None, killed: str
) -> None:
    """One row per event; the kill shown where it happened."""
    if not entries:
        return
    start = entries[0].at
    table = Table(title="Timeline", title_justify="left", show_edge=False, pad_edge=False)
    table.add_column("t", justify="right", style="dim")
    table.add_column("node")
    table.add_column("event")
    table.add_column("detail", overflow="fold")
    last_checkpoint: dict[str, str] = {}
    shown_kill = killed_at is None
    for entry in entries:
        if not shown_kill and killed_at is not None and entry.at >= killed_at:
            offset = (killed_at - start).total_seconds()
            table.add_row(f"+{offset:5.2f}s", "", "[bold red]💥 SIGKILL[/]", killed)
            shown_kill = True
        if entry.event == "TaskScheduled":
            continue
        what, detail = _describe(entry, last_checkpoint)
        table.add_row(f"+{(entry.at - start).total_seconds():5.2f}s", entry.node, what, detail)
    console.print(table)


def print_final_state(console: Console, state: ExecutionState) -> None:
    table = Table(
        title=f"Final state: {state.execution_id} [bold]{state.status}[/] "
        f"(progress {state.progress:.0%}, epoch {state.epoch}, owner {state.owner})",
        title_justify="left",
        show_edge=False,
        pad_edge=False,
    )
    for name in ("task", "status", "attempts", "duration", "model calls", "tokens"):
        table.add_column(name, justify="left" if name in ("task", "status") else "right")
    for task in state.tasks.values():
        d = task.execution_details
        table.add_row(
            task.task_id,
            task.status,
            str(task.attempts),
            f"{d.get('duration') or 0:.2f}s",
            str(d.get("model_calls") or "-"),
            str(d.get("tokens_used") or "-"),
        )
    console.print(table)
