"""``orchestrator-state migrate``: apply the SQL migrations (``--status``: list them,
and the indexes the config's postgresql ``indexes`` asks for, with whether each exists).

The database comes from ``--database-url`` / ``DATABASE_URL`` (or the config's
``connection_string``), table names from ``--config`` (the seed's postgresql
``schema`` block). Safe to run from several processes at once (an advisory lock).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from orchestrator._cli import _options as opts
from orchestrator.app import apply_migrations, open_pool, plan_postgres
from orchestrator.events import OrchestratorStateError
from orchestrator.projections import (
    IndexState,
    MigrationStatus,
    TableNames,
    close_pool,
    index_status,
    migration_status,
)


def _load(config: Path | None) -> tuple[TableNames, str | None]:
    pg = plan_postgres(opts.settings_of(config))
    return pg.table_names, pg.dsn


async def _migrate(
    dsn: str, tables: TableNames, status: bool
) -> tuple[list[str], Any, list[IndexState]]:
    pool = await open_pool(dsn, max_size=1)
    try:
        applied = [] if status else await apply_migrations(pool, tables)
        async with pool.acquire() as conn:
            return applied, await migration_status(conn), await index_status(conn, tables)
    finally:
        await close_pool(pool)


def migrate(
    database_url: str | None = opts.database_url(),
    config: Path | None = opts.config_file("YAML with the seed's blocks."),
    status: bool = typer.Option(False, "--status", help="Show applied/pending; change nothing."),
    as_json: bool = typer.Option(False, "--json", help="Print the migrations as JSON."),
) -> None:
    """Apply the pending SQL migrations (read models and runtime tables)."""
    tables, config_dsn = _load(config)
    dsn = database_url or config_dsn
    err = Console(stderr=True)
    if not dsn:
        err.print("[bold red]error:[/] pass --database-url or set DATABASE_URL")
        raise typer.Exit(2)
    try:
        applied, rows, indexes = asyncio.run(_migrate(dsn, tables, status))
    except (OrchestratorStateError, RuntimeError) as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    _show(rows, applied, as_json, status)
    if status and not as_json and indexes:
        table = Table("table", "column", "index (state_management.config.indexes)", "state")
        for i in indexes:
            table.add_row(i.table, i.column, i.index, i.state)
        Console().print(table)


def _show(rows: list[MigrationStatus], applied: list[str], as_json: bool, status: bool) -> None:
    if as_json:
        items = [
            {
                "version": r.version,
                "name": r.name,
                "applied_at": None if r.applied_at is None else str(r.applied_at),
                "applied_now": r.name in applied,
            }
            for r in rows
        ]
        typer.echo(json.dumps(items, indent=2))
        return
    if status:
        table = Table("version", "migration", "applied at")
        for r in rows:
            table.add_row(
                str(r.version), r.name, "pending" if r.applied_at is None else str(r.applied_at)
            )
        Console().print(table)
        return
    pending = sum(r.applied_at is None for r in rows)
    Console().print(
        f"[green]✓[/] {len(applied)} migration(s) applied, {len(rows) - len(applied) - pending} "
        f"already there; runtime tables ready"
    )
