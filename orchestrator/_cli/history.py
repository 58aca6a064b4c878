"""``orchestrator-state replay | trace | check | bottlenecks | fork``: see history.

* ``replay EXECUTION [--seq N | --at-time T | --checkpoint ID]``: the state at that
  point (``--json`` for machines); ``--diff [--last N]`` streams each event with the
  state change it made;
* ``trace EXECUTION --since 1h``: each event since then with its state changes;
* ``check [--pipeline P]``: the read model against the fold of the history; exits 1
  when anything is inconsistent, 0 when clean;
* ``bottlenecks``: slowest and most-retried tasks, longest waits, consumer lag;
* ``fork EXECUTION --seq N | --checkpoint ID``: a new execution from that state.

PostgreSQL and Kafka come from ``--database-url`` / ``--bootstrap-servers`` or
``DATABASE_URL`` / ``KAFKA_BOOTSTRAP_SERVERS``; table names and topics from
``--config FILE`` (the seed's ``state_management`` block) or the defaults. Snapshots
are found through the ``snapshots`` index; its rows name their store.
"""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console

from orchestrator._cli._history_conn import (
    JSON_LINES,
    NO_SNAPSHOTS,
    S3,
    SOURCE,
    STORE,
    Where,
    ask,
    emit_json,
    need_kafka,
    open_debugger,
    print_each,
    resolve,
    run,
    with_where,
)
from orchestrator._cli._points import (
    AT_RENAMED,
    at_time_option,
    parse_when,
    renamed_option,
    seq_option,
)
from orchestrator._cli._sealed import open_sealed
from orchestrator.debug import (
    Source,
    Target,
    TraceEntry,
    bottlenecks_view,
    consistency_view,
    provenance,
    state_view,
    step_json,
    step_view,
    to_jsonable,
    trace_view,
)

app = typer.Typer(help="See history: replay, trace, check, bottlenecks, fork.")


def _target(seq: int | None, at_time: str | None, checkpoint: str | None) -> Target:
    if sum(x is not None for x in (seq, at_time, checkpoint)) > 1:
        raise typer.BadParameter("give one of --seq, --at-time, --checkpoint")
    return Target(
        sequence=seq,
        time=None if at_time is None else parse_when(at_time),
        checkpoint=checkpoint,
    )


@app.command("replay")
@with_where
def replay(
    execution_id: str = typer.Argument(..., help="The execution."),
    seq: int | None = seq_option(),
    at_time: str | None = at_time_option(),
    checkpoint: str | None = typer.Option(None, "--checkpoint", help="State at this checkpoint."),
    source: str = SOURCE,
    as_json: bool = JSON_LINES,
    show_diff: bool = typer.Option(False, "--diff", help="Stream each event and what it changed."),
    last: int | None = typer.Option(None, "--last", min=1, help="With --diff: the last N events."),
    *,
    where: Where,
    store: str | None = STORE,
    s3_endpoint_url: str | None = S3,
    no_snapshots: bool = NO_SNAPSHOTS,
    _at: str | None = renamed_option("--at", AT_RENAMED),
    _until: str | None = renamed_option("--until", "--at-time T"),
) -> None:
    """Print an execution's state at a point of its history (default: latest)."""
    src = _source(source)
    target = _target(seq, at_time, checkpoint)
    if last is not None and not show_diff:
        raise typer.BadParameter("--last goes with --diff")
    conn = resolve(
        where,
        source=src,
        store=store,
        s3_endpoint_url=s3_endpoint_url,
        no_snapshots=no_snapshots,
    )
    out, err = Console(), Console(stderr=True)

    async def state() -> None:
        async with open_debugger(conn) as debugger:
            replayed = await debugger.replay(execution_id, target, source=src)
            opened = await open_sealed(conn.dsn, to_jsonable(replayed.state)) if as_json else None
        if seq is not None and replayed.state.last_sequence < seq:
            err.print(
                f"[yellow]sequence {seq} is past the last one ({replayed.state.last_sequence})[/]"
            )
        if as_json:
            err.print(provenance(replayed), highlight=False)
            emit_json(opened)
        else:
            out.print(state_view(replayed.state, subtitle=target.describe()))
            out.print(provenance(replayed), style="dim", highlight=False)

    async def steps() -> None:
        async with open_debugger(conn) as debugger:
            stream = debugger.replay_steps(execution_id, target, source=src, last=last)
            count = await print_each(stream, step_json, step_view, as_json)
        err.print(f"{count} event(s)", style="dim")

    run(steps if show_diff else state)


@app.command("trace")
@with_where
def trace(
    execution_id: str = typer.Argument(..., help="The execution."),
    since: str = typer.Option("1h", "--since", help="From this time (ISO, or 1h/30m/2d: ago)."),
    until: str | None = typer.Option(None, "--until", help="Up to this time."),
    source: str = SOURCE,
    as_json: bool = JSON_LINES,
    *,
    where: Where,
    no_snapshots: bool = NO_SNAPSHOTS,
) -> None:
    """Each event of an execution since a time, with the state changes it made."""
    src = _source(source)
    start, end = parse_when(since), None if until is None else parse_when(until)
    conn = resolve(where, source=src, no_snapshots=no_snapshots)

    async def go() -> None:
        async with open_debugger(conn) as debugger:
            stream = debugger.iter_state_changes(execution_id, start, to_time=end, source=src)
            count = await print_each(stream, TraceEntry.as_json, trace_view, as_json)
        Console(stderr=True).print(f"{count} event(s) since {start.isoformat()}", style="dim")

    run(go)


@app.command("check")
@with_where
def check(
    pipeline: str | None = typer.Option(
        None, "--pipeline", help="Only this pipeline's executions."
    ),
    source: str = SOURCE,
    as_json: bool = JSON_LINES,
    *,
    where: Where,
) -> None:
    """Compare the read model with the fold of the history; exit 1 if inconsistent."""
    src = _source(source)
    conn = resolve(where, source=src)

    report = ask(conn, lambda debugger: debugger.check_consistency(pipeline, source=src))
    if as_json:
        emit_json({"consistent": report.consistent, **to_jsonable(report)})
    else:
        Console().print(consistency_view(report))
    if not report.consistent:
        raise typer.Exit(1)


@app.command("bottlenecks")
@with_where
def bottlenecks(
    pipeline: str | None = typer.Option(
        None, "--pipeline", help="Only this pipeline's executions."
    ),
    executions: int = typer.Option(1000, "--executions", min=1, help="Newest N executions."),
    top: int = typer.Option(10, "--top", min=1, help="Rows per table."),
    as_json: bool = JSON_LINES,
    *,
    where: Where,
) -> None:
    """Slowest tasks (p50/p95), most-retried tasks, longest waits, consumer lag."""
    conn = resolve(where)

    report = ask(
        conn,
        lambda debugger: debugger.analyze_bottlenecks(pipeline, executions=executions, top=top),
    )
    if as_json:
        emit_json(to_jsonable(report))
    else:
        Console().print(bottlenecks_view(report))
        if not conn.bootstrap:
            Console(stderr=True).print("consumer lag needs --bootstrap-servers", style="dim")


@app.command("fork")
@with_where
def fork(
    execution_id: str = typer.Argument(..., help="The execution to fork."),
    seq: int | None = seq_option("Fork at this sequence."),
    checkpoint: str | None = typer.Option(None, "--checkpoint", help="Fork at this checkpoint."),
    new_id: str | None = typer.Option(None, "--id", help="The new execution's id."),
    paused: bool = typer.Option(False, "--paused", help="Leave the fork paused."),
    as_json: bool = JSON_LINES,
    *,
    where: Where,
    _at: str | None = renamed_option("--at", "--seq N"),
) -> None:
    """Start a new execution from an execution's state at a sequence or checkpoint."""
    from orchestrator.debug import fork_execution
    from orchestrator.state import StateRuntime, StateSettings

    if seq is not None and checkpoint is not None:
        raise typer.BadParameter("give --seq or --checkpoint, not both")
    conn = resolve(where)
    bootstrap = need_kafka(conn, "fork")

    async def go() -> Any:
        runtime = await StateRuntime.connect(
            dsn=conn.dsn,
            bootstrap_servers=bootstrap,
            settings=StateSettings(projection=conn.projection),
            kafka_security=conn.security,
        )
        async with runtime:
            return await fork_execution(
                execution_id,
                at_sequence=seq,
                checkpoint_id=checkpoint,
                new_execution_id=new_id,
                paused=paused,
                runtime=runtime,
            )

    result = run(go)
    if as_json:
        emit_json(to_jsonable(result) | {"position": result.position.token()})
        return
    Console().print(
        f"[bold green]forked[/] {result.forked_from} at sequence {result.fork_sequence} → "
        f"[bold]{result.execution_id}[/] ({result.status}; root {result.root_execution_id})\n"
        f"  carried: {', '.join(result.carried_tasks) or '-'}\n"
        f"  skipped: {', '.join(result.skipped_tasks) or '-'}\n"
        f"  to run:  {', '.join(result.pending_tasks) or '-'}\n"
        f"  checkpoints copied: {len(result.copied_checkpoints)}\n"
        f"run it on a node with the pipeline's code: "
        f"Orchestrator().resume_pipeline(execution_id={result.execution_id!r})",
        highlight=False,
    )


def _source(value: str) -> Source:
    if value not in ("archive", "log"):
        raise typer.BadParameter(f"--source must be archive or log, not {value!r}")
    return "archive" if value == "archive" else "log"
