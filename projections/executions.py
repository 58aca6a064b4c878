"""The executions read model (the seed's tables), declared as a :class:`Projection`.

Tables: ``pipeline_states``, ``task_states``, ``checkpoints``, ``shared_variables``
(upserted rows) and the archives ``execution_events``, ``shared_events`` (appended).
Fold: ``events.fold.step`` / ``step_shared`` through ``projections._batch.fold_batch``.
Migrations: ``orchestrator.projections.migrations`` (they also hold the processor
runtime's own tables: offsets, dead letters, leases, snapshots).

State keys: an execution id (``str``, cached per partition) or a shared variable's
``(namespace, name)`` (never cached: several partitions may write a namespace).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal

import asyncpg

from orchestrator.events import AppliedIds, DecodedRecord, ExecutionState, SharedVariable
from orchestrator.projections import readmodel as rm
from orchestrator.projections._batch import (
    BatchChanges,
    ExecutionEntry,
    VarKey,
    fold_batch,
    touched_keys,
)
from orchestrator.projections.projection import TP, Projection, Refused, Table, register


async def load_executions(
    conn: asyncpg.Connection, names: Mapping[str, str], execution_ids: Iterable[str]
) -> dict[str, ExecutionEntry]:
    """The stored states of these executions (missing ones are absent)."""
    ids = list(execution_ids)
    if not ids:
        return {}
    pipelines = await conn.fetch(
        f"SELECT * FROM {names['pipeline_states']} WHERE execution_id = ANY($1::text[])", ids
    )
    if not pipelines:
        return {}
    states = await states_of(conn, names, pipelines)
    applied = await _applied_ids(conn, names["execution_events"], list(states))
    out: dict[str, ExecutionEntry] = {}
    for p in pipelines:
        eid = p["execution_id"]
        last = (
            None
            if p["last_topic"] is None
            else (p["last_topic"], p["last_partition"], p["last_offset"])
        )
        state = states[eid]
        known = applied.get(eid)
        if known is not None and known.known().stop - 1 == state.last_sequence:
            state = replace(state, applied=known)
        out[eid] = ExecutionEntry(
            state=state,
            event_count=p["event_count"],
            tp=(p["last_topic"] or "", p["last_partition"] or 0),
            last_position=last,
        )
    return out


async def states_of(
    conn: asyncpg.Connection, names: Mapping[str, str], pipelines: Sequence[Mapping[str, Any]]
) -> dict[str, ExecutionState]:
    """The states of these ``pipeline_states`` rows, with their task rows and their live
    checkpoints (two queries), by execution id in the rows' order."""
    found = [p["execution_id"] for p in pipelines]
    tasks = await conn.fetch(
        f"SELECT * FROM {names['task_states']} WHERE execution_id = ANY($1::text[])", found
    )
    checkpoints = await conn.fetch(
        "SELECT execution_id, checkpoint_id, name, task_id, sequence, progress, created_at"
        f" FROM {names['checkpoints']} WHERE execution_id = ANY($1::text[])"
        " AND deleted_at IS NULL ORDER BY execution_id, sequence",
        found,
    )
    by_execution: dict[str, list[Any]] = {}
    for row in tasks:
        by_execution.setdefault(row["execution_id"], []).append(row)
    listed: dict[str, list[Any]] = {}
    for row in checkpoints:
        listed.setdefault(row["execution_id"], []).append(row)
    return {
        p["execution_id"]: rm.execution_from_rows(
            p,
            by_execution.get(p["execution_id"], []),
            rm.live_checkpoints(listed.get(p["execution_id"], [])),
        )
        for p in pipelines
    }


async def _applied_ids(
    conn: asyncpg.Connection, archive: str, execution_ids: list[str]
) -> dict[str, AppliedIds]:
    """The ids of the events applied to each execution, from the archive (the fold
    tells a duplicate from another record at a taken sequence by them)."""
    rows = await conn.fetch(
        f"SELECT execution_id, sequence, event_id FROM {archive}"
        " WHERE execution_id = ANY($1::text[]) AND outcome = 'applied'"
        " AND sequence IS NOT NULL ORDER BY execution_id, sequence",
        execution_ids,
    )
    out: dict[str, AppliedIds] = {}
    run: list[str] = []
    current: str | None = None
    first = expected = 0
    for r in rows:
        eid, seq = r["execution_id"], r["sequence"]
        if eid != current or seq != expected:  # a new execution, or a hole: restart
            if current is not None and run:
                out[current] = AppliedIds(run, first - 1)
            current, run, first = eid, [], seq
        run.append(r["event_id"])
        expected = seq + 1
    if current is not None and run:
        out[current] = AppliedIds(run, first - 1)
    return out


async def load_variables(
    conn: asyncpg.Connection, names: Mapping[str, str], keys: Iterable[VarKey]
) -> dict[VarKey, SharedVariable]:
    """The stored shared variables with these ``(namespace, name)`` keys."""
    namespaces, wanted = zip(*keys, strict=True) if keys else ((), ())
    sql = (
        f"SELECT * FROM {names['shared_variables']} WHERE (namespace, name) IN"
        " (SELECT * FROM unnest($1::text[], $2::text[]))"
    )
    rows = await conn.fetch(sql, list(namespaces), list(wanted)) if namespaces else []
    return {(r["namespace"], r["name"]): rm.shared_variable_from_row(r) for r in rows}


class ExecutionsFold:
    """:class:`~projections.projection.ReadModelFold` of the executions read model."""

    def keys(self, batch: Sequence[DecodedRecord]) -> dict[Hashable, TP | None]:
        executions, variables = touched_keys(batch)
        keys: dict[Any, TP | None] = {**executions}
        for key in variables:
            keys[key] = None
        return keys

    async def load(
        self, conn: asyncpg.Connection, names: Mapping[str, str], keys: Sequence[Hashable]
    ) -> dict[Hashable, Any]:
        ids = [k for k in keys if isinstance(k, str)]
        variables = [k for k in keys if isinstance(k, tuple)]
        found: dict[Any, Any] = {**await load_executions(conn, names, ids)}
        found.update(await load_variables(conn, names, variables))
        return found

    def fold(
        self,
        batch: Sequence[DecodedRecord],
        states: Mapping[Hashable, Any | None],
        refused: Refused | None,
    ) -> BatchChanges:
        executions: dict[str, ExecutionEntry | None] = {}
        variables: dict[VarKey, SharedVariable | None] = {}
        for key, state in states.items():
            if isinstance(key, str):
                executions[key] = state
            else:
                variables[key] = state  # type: ignore[index]
        return fold_batch(batch, executions, variables, refused)


def _upserted(
    key: str, columns: tuple[tuple[str, str], ...], pk: tuple[str, ...], row_type: str
) -> Table:
    return Table(
        key=key,
        default=f"public.{key}",
        columns=columns,
        primary_key=pk,
        write="upsert",
        row_type=row_type,
    )


def _archive(
    key: str,
    columns: tuple[tuple[str, str], ...],
    role: Literal["pipeline", "shared"],
    record_key: str,
) -> Table:
    """An archive: every record of the ``role`` topic, appended (COPY) by position."""
    return Table(
        key=key,
        default=f"public.{key}",
        columns=columns,
        primary_key=("topic", "partition", "offset"),
        write="append",
        archive=role,
        archive_key=record_key,
    )


EXECUTIONS: Projection = register(
    Projection(
        kind="executions",
        tables=(
            _upserted(
                "pipeline_states",
                rm.PIPELINE_COLUMNS,
                ("execution_id",),
                "orchestrator_pipeline_row",
            ),
            _upserted(
                "task_states",
                rm.TASK_COLUMNS,
                ("execution_id", "task_id"),
                "orchestrator_task_row",
            ),
            Table(
                key="checkpoints",
                default="public.checkpoints",
                columns=rm.CHECKPOINT_COLUMNS,
                # One row per applied save, keyed like its event (migration 0019): an id
                # saved again, or by another execution, is another row. Written once;
                # a withdrawal then sets only ``deleted_at``.
                primary_key=("execution_id", "sequence"),
                write="upsert",
                row_type="orchestrator_checkpoint_row",
                update=("deleted_at",),
                update_when="EXCLUDED.deleted_at IS NOT NULL",
            ),
            _upserted(
                "shared_variables",
                rm.SHARED_VARIABLE_COLUMNS,
                ("namespace", "name"),
                "orchestrator_shared_variable_row",
            ),
            _archive("execution_events", rm.EVENT_COLUMNS, "pipeline", "execution_id"),
            _archive("shared_events", rm.SHARED_EVENT_COLUMNS, "shared", "name"),
        ),
        fold=ExecutionsFold(),
        migrations="orchestrator.projections.migrations",
        entity=("pipeline_states", "execution_id"),
    )
)
"""The seed's read model: what ``ProjectionSettings`` folds unless told otherwise."""
