"""``orchestrator-state executions``: the read model's executions, newest first.

The same query as ``GET /executions`` (``projections.api``'s ``Queries``), so the
CLI and the API list the same rows in the same order.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from orchestrator._cli._connect import pg_pool
from orchestrator._cli._output import JSON_OPTION, emit_json
from orchestrator._cli.projections import _CONFIG, _DB, _need, _run, _settings
from orchestrator.projections.api._queries import ExecutionFilter, Queries


def executions(
    database_url: str | None = _DB,
    config: Path | None = _CONFIG,
    pipeline_id: str | None = typer.Option(None, "--pipeline-id", help="Only this pipeline."),
    status: list[str] = typer.Option([], "--status", help="Only these statuses (repeatable)."),
    limit: int = typer.Option(50, "--limit", min=1, max=1000, help="At most this many rows."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Executions in the read model, newest first (as GET /executions)."""
    settings, configured = _settings("read_models", config)
    dsn = _need(database_url or configured, "--database-url", "DATABASE_URL")
    queries = Queries(settings.tables)

    async def fetch() -> list[dict[str, object]]:
        pool = await pg_pool(dsn, max_size=1)
        try:
            where = ExecutionFilter(pipeline_id=pipeline_id, statuses=tuple(status))
            return [dict(row) for row in await queries.executions(pool, where, limit)]
        finally:
            await pool.close()

    rows = _run(fetch())
    if as_json:
        emit_json(rows)
        return
    table = Table("execution", "pipeline", "status", "progress", "current task", "updated")
    for row in rows:
        table.add_row(
            str(row["execution_id"]),
            str(row["pipeline_id"]),
            str(row["status"]),
            f"{float(row['progress'] or 0):.0%}",
            str(row["current_task"] or ""),
            str(row["updated_at"] or ""),
        )
    Console().print(table)
