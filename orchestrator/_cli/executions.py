"""``orchestrator-state executions``: the read model's executions, newest first, and
``executions erase ID --yes``, the crypto-shredding of one execution's data.

The listing runs the same query as ``GET /executions`` (``projections.api``'s
``Queries``), so the CLI and the API list the same rows in the same order. ``erase``
deletes the execution's data key (``projections.datakeys``): its user data, wherever it
is (Kafka, read models, snapshots, blobs), can no longer be read; its events still fold.
"""

from __future__ import annotations

from pathlib import Path

import asyncpg
import typer
from rich.console import Console
from rich.table import Table

from orchestrator._cli import _options as opts
from orchestrator._cli._connect import pg_pool, run_on
from orchestrator._cli._output import JSON_OPTION, emit_json
from orchestrator._cli.projections import _CONFIG, _DB, _settings
from orchestrator.events import KEYS_ENV, KeyRing
from orchestrator.projections import EraseResult, ExecutionFilter, PostgresDataKeys, Queries


def executions(
    ctx: typer.Context,
    database_url: str | None = _DB,
    config: Path | None = _CONFIG,
    pipeline_id: str | None = typer.Option(None, "--pipeline-id", help="Only this pipeline."),
    status: list[str] = typer.Option([], "--status", help="Only these statuses (repeatable)."),
    limit: int = typer.Option(50, "--limit", min=1, max=1000, help="At most this many rows."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Executions in the read model, newest first (as GET /executions); see also erase."""
    if ctx.invoked_subcommand is not None:
        return
    settings, configured = _settings("read_models", config)
    dsn = opts.need_database(database_url or configured)
    queries = Queries(settings.tables)

    async def fetch(pool: asyncpg.Pool) -> list[dict[str, object]]:
        where = ExecutionFilter(pipeline_id=pipeline_id, statuses=tuple(status))
        return [dict(row) for row in await queries.executions(pool, where, limit)]

    rows = run_on(lambda: pg_pool(dsn, max_size=1), fetch)
    if as_json:
        emit_json(rows)
        return
    table = Table("execution", "pipeline", "status", "progress", "current task", "updated")
    for row in rows:
        progress = row["progress"]  # double precision, NOT NULL
        table.add_row(
            str(row["execution_id"]),
            str(row["pipeline_id"]),
            str(row["status"]),
            f"{progress if isinstance(progress, float) else 0.0:.0%}",
            str(row["current_task"] or ""),
            str(row["updated_at"] or ""),
        )
    Console().print(table)


def erase(
    execution_id: str = typer.Argument(..., help="The execution whose data to erase."),
    database_url: str | None = _DB,
    config: Path | None = _CONFIG,
    yes: bool = typer.Option(False, "--yes", help="Confirm: this cannot be undone."),
) -> None:
    """Erase an execution's user data for good by deleting its data key (crypto-shredding).

    Its checkpoint data, task inputs and outputs, context and blobs become unreadable in
    Kafka, PostgreSQL, snapshots and S3 at once; its events still fold (statuses and
    history stay), and reads of its data answer "erased" (API: 410 Gone)."""
    settings, configured = _settings("read_models", config)
    dsn = opts.need_database(database_url or configured)
    err = Console(stderr=True)
    if not yes:
        err.print(f"[bold red]error:[/] erasing {execution_id} cannot be undone: pass --yes")
        raise typer.Exit(2)

    async def go(pool: asyncpg.Pool) -> tuple[EraseResult, bool]:
        result = await PostgresDataKeys(pool, None).erase(execution_id)
        exists = await Queries(settings.tables).execution(pool, execution_id) is not None
        return result, exists

    result, exists = run_on(lambda: pg_pool(dsn, max_size=1), go)
    if result.already:
        print(f"execution {execution_id} was already erased")
    elif result.had_key:
        print(
            f"erased execution {execution_id}: its data key is deleted, so its user data "
            "in Kafka, PostgreSQL, snapshots and blobs can no longer be read"
        )
    elif exists:
        err.print(
            f"[bold red]error:[/] execution {execution_id} has no data key: it was written "
            "with encryption off, so its data cannot be shredded (nothing was changed)"
        )
        raise typer.Exit(1)
    else:
        err.print(f"[bold red]error:[/] no execution {execution_id} (nothing was changed)")
        raise typer.Exit(1)


def rewrap_keys(
    database_url: str | None = _DB,
    config: Path | None = _CONFIG,
) -> None:
    """Re-wrap every execution's data key with the active master key (key rotation).

    Rotate by adding a master key to ORCHESTRATOR_SNAPSHOT_KEYS and making it active
    (ORCHESTRATOR_SNAPSHOT_ACTIVE_KEY), then run this: afterwards the old master key
    may leave the ring (snapshots it encrypted still need it until they are pruned)."""
    _, configured = _settings("read_models", config)
    dsn = opts.need_database(database_url or configured)
    ring = KeyRing.from_env()
    if ring is None:
        Console(stderr=True).print(f"[bold red]error:[/] set {KEYS_ENV} (the master key ring)")
        raise typer.Exit(2)

    moved = run_on(
        lambda: pg_pool(dsn, max_size=1), lambda pool: PostgresDataKeys(pool, ring).rewrap()
    )
    print(f"re-wrapped {moved} data key(s) with master key {ring.active!r}")
