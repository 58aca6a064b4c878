"""The processor's side of tracing: spans for a committed batch, the traceparents kept.

Called only when tracing is on (``events.tracing.enabled()``, checked once per batch).
A batch gets an ``orchestrator.fold_batch`` span; each applied record that carries a
``traceparent`` gets an ``orchestrator.apply`` span *in the writer's trace* (its parent
is the append that wrote it), linked to the batch span: so one trace runs from the
caller through the append to the fold. The last traced write applied to an execution
is kept in ``execution_traces`` (same transaction) for the query API.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
from opentelemetry import trace
from opentelemetry.context import Context

from orchestrator.events import RawRecord, context_of, traceparent_of, tracer
from orchestrator.projections.projection import Row

TraceRow = tuple[str, str, int]
"""(execution_id, traceparent, sequence)."""
Traced = tuple[str, tuple[Any, ...]]
"""(traceparent, ``execution_events`` archive row) of an applied record."""

_APPLIED = "applied"
_UPSERT = (
    "INSERT INTO execution_traces (execution_id, traceparent, sequence, updated_at)"
    " SELECT e, t, s, now() FROM unnest($1::text[], $2::text[], $3::bigint[]) AS u(e, t, s)"
    " ON CONFLICT (execution_id) DO UPDATE SET traceparent = excluded.traceparent,"
    " sequence = excluded.sequence, updated_at = excluded.updated_at"
)


def traced_applied(owned: Sequence[RawRecord], archive: Sequence[Row]) -> list[Traced]:
    """(traceparent, archive row) of each applied execution event that carries one
    (``archive``: the batch's ``execution_events`` rows)."""
    parents: dict[tuple[str, int, int], str] = {}
    for record in owned:
        if record.headers:
            found = traceparent_of(record.headers)
            if found is not None:
                pos = record.position
                parents[(pos.topic, pos.partition, pos.offset)] = found
    if not parents:
        return []
    out: list[Traced] = []
    for row in archive:
        parent = parents.get((row[0], row[1], row[2]))
        if parent is not None and row[10] == _APPLIED:
            out.append((parent, row))
    return out


def trace_rows(traced: Sequence[Traced]) -> list[TraceRow]:
    """The ``execution_traces`` rows: the last traced write of each execution."""
    last: dict[str, TraceRow] = {}
    for parent, row in traced:
        last[row[3]] = (row[3], parent, row[5])
    return list(last.values())


async def write_traces(conn: asyncpg.Connection, rows: Sequence[TraceRow]) -> None:
    """Upsert the rows (inside the batch's transaction)."""
    await conn.execute(_UPSERT, [r[0] for r in rows], [r[1] for r in rows], [r[2] for r in rows])


def batch_spans(owned: Sequence[RawRecord], traced: Sequence[Traced], started_ns: int) -> None:
    """End the spans of a committed batch: one for the batch, one per traced record."""
    offsets = [r.position.offset for r in owned]
    partitions = sorted({f"{r.position.topic}[{r.position.partition}]" for r in owned})
    batch = tracer().start_span(
        "orchestrator.fold_batch",
        context=Context(),
        start_time=started_ns,
        attributes={
            "partition": partitions[0] if len(partitions) == 1 else ",".join(partitions),
            "records": len(owned),
            "first_offset": min(offsets),
            "last_offset": max(offsets),
        },
    )
    links = [trace.Link(batch.get_span_context())]
    for parent, row in traced:
        tracer().start_span(
            "orchestrator.apply",
            context=context_of(parent),
            start_time=started_ns,
            links=links,
            attributes={
                "execution_id": row[3],
                "sequence": row[5],
                "event_type": row[8],
                "topic": row[0],
                "partition": row[1],
                "offset": row[2],
            },
        ).end()
    batch.end()
