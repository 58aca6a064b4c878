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

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console

from orchestrator._cli._connect import kafka_reachable, pg_pool
from orchestrator._cli._points import (
    AT_RENAMED,
    at_time_option,
    parse_when,
    renamed_option,
    seq_option,
)
from orchestrator._cli._sealed import open_sealed
from orchestrator._cli.topics import configured_security
from orchestrator.app import plan_postgres
from orchestrator.config import S3Backend, load_config_file
from orchestrator.debug import render
from orchestrator.debug.debugger import StateDebugger
from orchestrator.debug.diff import to_jsonable
from orchestrator.debug.replay import Source, Target
from orchestrator.events.security import PLAINTEXT, KafkaSecurity
from orchestrator.projections.settings import ProjectionSettings
from orchestrator.snapshots import open_store

T = TypeVar("T")

app = typer.Typer(help="See history: replay, trace, check, bottlenecks, fork.")

_DB = typer.Option(
    None,
    "--database-url",
    envvar="DATABASE_URL",
    show_default=False,
    help="PostgreSQL DSN of the read models and the event archive.",
)
_KAFKA = typer.Option(
    None,
    "--bootstrap-servers",
    envvar="KAFKA_BOOTSTRAP_SERVERS",
    show_default=False,
    help="Kafka bootstrap servers (--source log, lag, fork).",
)
_CONFIG = typer.Option(None, "--config", help="YAML with the seed's state_management block.")
_PROJECTION = typer.Option("read_models", "--projection", help="Projection whose tables to read.")
_SOURCE = typer.Option("archive", "--source", help="archive (execution_events) or log (Kafka).")
_JSON = typer.Option(False, "--json", help="JSON for machines (JSON lines when streaming).")
_STORE = typer.Option(
    None, "--store", help="Snapshot store URL (default: the one the index names)."
)
_S3 = typer.Option(
    None,
    "--s3-endpoint-url",
    envvar="S3_ENDPOINT_URL",
    show_default=False,
    help="Endpoint of an S3-compatible snapshot store.",
)
_NO_SNAPSHOTS = typer.Option(False, "--no-snapshots", help="Fold from the first event.")
_TOPIC = typer.Option(None, "--pipeline-topic", help="Override the pipeline events topic.")


@dataclass(frozen=True)
class _Conn:
    """What every command needs, resolved from options, config and environment."""

    dsn: str
    bootstrap: str | None
    projection: ProjectionSettings
    store: str | None
    s3_endpoint_url: str | None
    snapshots: bool
    security: KafkaSecurity = PLAINTEXT
    s3_region: str | None = None
    """The s3 backend's ``region`` from ``--config`` (else boto3's: AWS_DEFAULT_REGION)."""


def _resolve(
    database_url: str | None,
    bootstrap_servers: str | None,
    projection: str,
    config: Path | None,
    store: str | None = None,
    s3_endpoint_url: str | None = None,
    no_snapshots: bool = False,
    pipeline_topic: str | None = None,
) -> _Conn:
    settings = ProjectionSettings(name=projection)
    dsn, region = database_url, None
    if config is not None:
        loaded = load_config_file(config).settings
        topics = loaded.state_management.event_store.topics
        settings = replace(
            settings, pipeline_topic=topics.pipeline_events, shared_topic=topics.shared_events
        )
        backend = loaded.backend()
        if isinstance(backend, S3Backend) and "region" in backend.model_fields_set:
            region = backend.region
        pg = plan_postgres(loaded)
        settings = replace(settings, tables=pg.tables)
        dsn = dsn or pg.dsn
    if pipeline_topic:
        settings = replace(settings, pipeline_topic=pipeline_topic)
    if not dsn:
        Console(stderr=True).print("[bold red]error:[/] pass --database-url or set DATABASE_URL")
        raise typer.Exit(2)
    security = configured_security(config) if bootstrap_servers else PLAINTEXT
    return _Conn(
        dsn, bootstrap_servers, settings, store, s3_endpoint_url, not no_snapshots, security, region
    )


def _need_kafka(conn: _Conn, why: str) -> str:
    if not conn.bootstrap:
        Console(stderr=True).print(
            f"[bold red]error:[/] {why} needs Kafka: pass --bootstrap-servers or set "
            "KAFKA_BOOTSTRAP_SERVERS"
        )
        raise typer.Exit(2)
    return kafka_reachable(conn.bootstrap, conn.security)


@contextlib.asynccontextmanager
async def _debugger(conn: _Conn) -> AsyncIterator[StateDebugger]:
    pool = await pg_pool(conn.dsn, max_size=4)
    try:
        yield StateDebugger(
            pool=pool,
            projection=conn.projection,
            bootstrap_servers=conn.bootstrap,
            use_snapshots=conn.snapshots,
            snapshot_store=open_store(
                conn.store, endpoint_url=conn.s3_endpoint_url, region=conn.s3_region
            )
            if conn.store
            else None,
            s3_endpoint_url=conn.s3_endpoint_url,
            kafka_security=conn.security,
        )
    finally:
        await pool.close()


def _run(work: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run a command; failures are rendered once, by ``orchestrator.cli.main``."""
    return asyncio.run(work())


def _target(seq: int | None, at_time: str | None, checkpoint: str | None) -> Target:
    if sum(x is not None for x in (seq, at_time, checkpoint)) > 1:
        raise typer.BadParameter("give one of --seq, --at-time, --checkpoint")
    return Target(
        sequence=seq,
        time=None if at_time is None else parse_when(at_time),
        checkpoint=checkpoint,
    )


def _emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()


@app.command("replay")
def replay(
    execution_id: str = typer.Argument(..., help="The execution."),
    seq: int | None = seq_option(),
    at_time: str | None = at_time_option(),
    checkpoint: str | None = typer.Option(None, "--checkpoint", help="State at this checkpoint."),
    source: str = _SOURCE,
    as_json: bool = _JSON,
    show_diff: bool = typer.Option(False, "--diff", help="Stream each event and what it changed."),
    last: int | None = typer.Option(None, "--last", min=1, help="With --diff: the last N events."),
    database_url: str | None = _DB,
    bootstrap_servers: str | None = _KAFKA,
    projection: str = _PROJECTION,
    config: Path | None = _CONFIG,
    pipeline_topic: str | None = _TOPIC,
    store: str | None = _STORE,
    s3_endpoint_url: str | None = _S3,
    no_snapshots: bool = _NO_SNAPSHOTS,
    _at: str | None = renamed_option("--at", AT_RENAMED),
    _until: str | None = renamed_option("--until", "--at-time T"),
) -> None:
    """Print an execution's state at a point of its history (default: latest)."""
    src = _source(source)
    target = _target(seq, at_time, checkpoint)
    if last is not None and not show_diff:
        raise typer.BadParameter("--last goes with --diff")
    conn = _resolve(
        database_url,
        bootstrap_servers,
        projection,
        config,
        store,
        s3_endpoint_url,
        no_snapshots,
        pipeline_topic,
    )
    if src == "log":
        _need_kafka(conn, "--source log")
    out, err = Console(), Console(stderr=True)

    async def state() -> None:
        async with _debugger(conn) as debugger:
            replayed = await debugger.replay(execution_id, target, source=src)
            opened = await open_sealed(conn.dsn, to_jsonable(replayed.state)) if as_json else None
        if seq is not None and replayed.state.last_sequence < seq:
            err.print(
                f"[yellow]sequence {seq} is past the last one ({replayed.state.last_sequence})[/]"
            )
        if as_json:
            err.print(render.provenance(replayed), highlight=False)
            _emit_json(opened)
        else:
            out.print(render.state_view(replayed.state, subtitle=target.describe()))
            out.print(render.provenance(replayed), style="dim", highlight=False)

    async def steps() -> None:
        count = 0
        async with _debugger(conn) as debugger:
            stream = debugger.replay_steps(execution_id, target, source=src, last=last)
            async with contextlib.aclosing(stream) as items:
                async for item in items:
                    count += 1
                    if as_json:
                        _emit_json(render.step_json(item))
                    else:
                        out.print(render.step_view(item))
        err.print(f"{count} event(s)", style="dim")

    _run(steps if show_diff else state)


@app.command("trace")
def trace(
    execution_id: str = typer.Argument(..., help="The execution."),
    since: str = typer.Option("1h", "--since", help="From this time (ISO, or 1h/30m/2d: ago)."),
    until: str | None = typer.Option(None, "--until", help="Up to this time."),
    source: str = _SOURCE,
    as_json: bool = _JSON,
    database_url: str | None = _DB,
    bootstrap_servers: str | None = _KAFKA,
    projection: str = _PROJECTION,
    config: Path | None = _CONFIG,
    pipeline_topic: str | None = _TOPIC,
    no_snapshots: bool = _NO_SNAPSHOTS,
) -> None:
    """Each event of an execution since a time, with the state changes it made."""
    src = _source(source)
    start, end = parse_when(since), None if until is None else parse_when(until)
    conn = _resolve(
        database_url,
        bootstrap_servers,
        projection,
        config,
        no_snapshots=no_snapshots,
        pipeline_topic=pipeline_topic,
    )
    out, err = Console(), Console(stderr=True)

    async def go() -> None:
        count = 0
        async with _debugger(conn) as debugger:
            stream = debugger.iter_state_changes(execution_id, start, to_time=end, source=src)
            async with contextlib.aclosing(stream) as entries:
                async for entry in entries:
                    count += 1
                    if as_json:
                        _emit_json(entry.as_json())
                    else:
                        out.print(render.trace_view(entry))
        err.print(f"{count} event(s) since {start.isoformat()}", style="dim")

    _run(go)


@app.command("check")
def check(
    pipeline: str | None = typer.Option(
        None, "--pipeline", help="Only this pipeline's executions."
    ),
    source: str = _SOURCE,
    as_json: bool = _JSON,
    database_url: str | None = _DB,
    bootstrap_servers: str | None = _KAFKA,
    projection: str = _PROJECTION,
    config: Path | None = _CONFIG,
    pipeline_topic: str | None = _TOPIC,
) -> None:
    """Compare the read model with the fold of the history; exit 1 if inconsistent."""
    src = _source(source)
    conn = _resolve(
        database_url, bootstrap_servers, projection, config, pipeline_topic=pipeline_topic
    )
    if src == "log":
        _need_kafka(conn, "--source log")

    async def go() -> Any:
        async with _debugger(conn) as debugger:
            return await debugger.check_consistency(pipeline, source=src)

    report = _run(go)
    if as_json:
        _emit_json({"consistent": report.consistent, **to_jsonable(report)})
    else:
        Console().print(render.consistency_view(report))
    if not report.consistent:
        raise typer.Exit(1)


@app.command("bottlenecks")
def bottlenecks(
    pipeline: str | None = typer.Option(
        None, "--pipeline", help="Only this pipeline's executions."
    ),
    executions: int = typer.Option(1000, "--executions", min=1, help="Newest N executions."),
    top: int = typer.Option(10, "--top", min=1, help="Rows per table."),
    as_json: bool = _JSON,
    database_url: str | None = _DB,
    bootstrap_servers: str | None = _KAFKA,
    projection: str = _PROJECTION,
    config: Path | None = _CONFIG,
    pipeline_topic: str | None = _TOPIC,
) -> None:
    """Slowest tasks (p50/p95), most-retried tasks, longest waits, consumer lag."""
    conn = _resolve(
        database_url, bootstrap_servers, projection, config, pipeline_topic=pipeline_topic
    )

    async def go() -> Any:
        async with _debugger(conn) as debugger:
            return await debugger.analyze_bottlenecks(pipeline, executions=executions, top=top)

    report = _run(go)
    if as_json:
        _emit_json(to_jsonable(report))
    else:
        Console().print(render.bottlenecks_view(report))
        if not conn.bootstrap:
            Console(stderr=True).print("consumer lag needs --bootstrap-servers", style="dim")


@app.command("fork")
def fork(
    execution_id: str = typer.Argument(..., help="The execution to fork."),
    seq: int | None = seq_option("Fork at this sequence."),
    checkpoint: str | None = typer.Option(None, "--checkpoint", help="Fork at this checkpoint."),
    new_id: str | None = typer.Option(None, "--id", help="The new execution's id."),
    paused: bool = typer.Option(False, "--paused", help="Leave the fork paused."),
    as_json: bool = _JSON,
    database_url: str | None = _DB,
    bootstrap_servers: str | None = _KAFKA,
    projection: str = _PROJECTION,
    config: Path | None = _CONFIG,
    pipeline_topic: str | None = _TOPIC,
    _at: str | None = renamed_option("--at", "--seq N"),
) -> None:
    """Start a new execution from an execution's state at a sequence or checkpoint."""
    from orchestrator.debug.fork import fork_execution
    from orchestrator.state.runtime import StateRuntime, StateSettings

    if seq is not None and checkpoint is not None:
        raise typer.BadParameter("give --seq or --checkpoint, not both")
    conn = _resolve(
        database_url, bootstrap_servers, projection, config, pipeline_topic=pipeline_topic
    )
    bootstrap = _need_kafka(conn, "fork")

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

    result = _run(go)
    if as_json:
        _emit_json(to_jsonable(result) | {"position": result.position.token()})
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
