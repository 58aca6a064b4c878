"""Read-model and archive retention: retiring executions that finished long ago.

Only this folder issues SQL on read-model tables, so the deletes live here; which
executions may go is decided above (``snapshots.retention``): only those whose kept
terminal snapshot covers their whole history, so each stays restorable from it.

Retiring an execution deletes its rows in ``pipeline_states``, ``task_states``,
``checkpoints`` and the event archive, in one transaction. Executions still in the
read model keep their whole archive: a rebuild folds it where Kafka's retention has
already deleted the start of a partition.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from orchestrator.projections.settings import ReadModelTables

FINISHED = ("completed", "failed", "cancelled")


@dataclass(frozen=True, slots=True)
class Finished:
    """An execution that finished before the cutoff, as the read model holds it."""

    execution_id: str
    status: str
    last_sequence: int
    finished_at: datetime


@dataclass(frozen=True, slots=True)
class Retired:
    """Rows a retirement deleted, per table."""

    executions: int = 0
    tasks: int = 0
    checkpoints: int = 0
    archived_events: int = 0


async def finished_before(
    conn: asyncpg.Connection, tables: ReadModelTables, cutoff: datetime
) -> list[Finished]:
    """Executions that finished (completed, failed, cancelled) before ``cutoff``."""
    rows = await conn.fetch(
        f"SELECT execution_id, status, last_sequence,"
        f" COALESCE(completed_at, updated_at) AS finished_at FROM {tables.pipeline_states}"
        " WHERE status = ANY($1::text[]) AND COALESCE(completed_at, updated_at) < $2"
        " ORDER BY execution_id",
        list(FINISHED),
        cutoff,
    )
    return [Finished(r[0], r[1], r[2], r[3]) for r in rows]


async def retire_executions(
    conn: asyncpg.Connection, tables: ReadModelTables, execution_ids: list[str]
) -> Retired:
    """Delete these executions' read-model rows and archived events (one transaction).

    Only a finished execution is deleted (checked again here, under the row lock), so
    one that came back to life since it was chosen is left alone."""
    if not execution_ids:
        return Retired()
    async with conn.transaction():
        gone = await conn.fetch(
            f"DELETE FROM {tables.pipeline_states} WHERE execution_id = ANY($1::text[])"
            " AND status = ANY($2::text[]) RETURNING execution_id",
            execution_ids,
            list(FINISHED),
        )
        ids = [r[0] for r in gone]
        counts = []
        for table in (tables.task_states, tables.checkpoints, tables.execution_events):
            status = await conn.execute(
                f"DELETE FROM {table} WHERE execution_id = ANY($1::text[])", ids
            )
            counts.append(int(status.rsplit(" ", 1)[-1]))
    return Retired(len(ids), *counts)
