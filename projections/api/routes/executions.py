"""``/executions`` and ``/executions/{id}``: the seed's pipeline state, listed and read."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response

from orchestrator.projections.api._convert import execution_out, summary_out
from orchestrator.projections.api._deps import Context
from orchestrator.projections.api._params import decode_cursor, encode_cursor, utc
from orchestrator.projections.api._queries import ExecutionFilter
from orchestrator.projections.api._trace import last_traceparent
from orchestrator.projections.api.errors import ExecutionNotFound
from orchestrator.projections.api.models import ExecutionOut, ExecutionPage, PipelineStatus
from orchestrator.projections.api.routes._common import NOT_FOUND, ExecutionId
from orchestrator.projections.redisstore import RedisReadModelStore, is_redis_outage

router = APIRouter(tags=["executions"])


@router.get("/executions", response_model=ExecutionPage)
async def list_executions(
    ctx: Context,
    pipeline_id: Annotated[
        str | None, Query(description="Only this pipeline's executions.")
    ] = None,
    status: Annotated[
        list[PipelineStatus] | None, Query(description="Only these statuses (repeatable).")
    ] = None,
    created_after: Annotated[
        datetime | None, Query(description="Created strictly after (naive = UTC).")
    ] = None,
    created_before: Annotated[
        datetime | None, Query(description="Created strictly before (naive = UTC).")
    ] = None,
    cursor: Annotated[
        str | None, Query(description="`next_cursor` of the previous page, unchanged.")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size.")] = 50,
) -> ExecutionPage:
    """Executions newest first, filtered, in pages (keyset on created_at, execution_id)."""
    where = ExecutionFilter(
        pipeline_id=pipeline_id,
        statuses=tuple(status or ()),
        created_after=utc(created_after, "created_after"),
        created_before=utc(created_before, "created_before"),
        after=None if cursor is None else decode_cursor(cursor),
    )
    rows = await ctx.queries.executions(ctx.pool, where, limit + 1)
    items = [summary_out(row) for row in rows[:limit]]
    next_cursor = None
    if len(rows) > limit:
        last = items[-1]
        next_cursor = encode_cursor(last.created_at, last.execution_id)
    return ExecutionPage(items=items, next_cursor=next_cursor)


@router.get("/executions/{execution_id}", response_model=ExecutionOut, responses=NOT_FOUND)
async def get_execution(
    ctx: Context, execution_id: ExecutionId, request: Request, response: Response
) -> ExecutionOut:
    """One execution's state, with fencing fields (epoch, last_sequence) and lineage.

    With tracing on, the ``traceparent`` response header is the trace context of the
    last traced write applied to the execution."""
    row: Any = None
    if ctx.redis is not None and "position" not in request.query_params:
        row = await _from_redis(ctx.redis, execution_id)  # a position waited on PostgreSQL
    if row is None:
        row = await ctx.queries.execution(ctx.pool, execution_id)
    if row is None:
        raise ExecutionNotFound(execution_id)
    traceparent = await last_traceparent(ctx.pool, execution_id)
    if traceparent is not None:
        response.headers["traceparent"] = traceparent
    return execution_out(row)


async def _from_redis(store: RedisReadModelStore, execution_id: str) -> dict[str, Any] | None:
    """The execution's row from Redis; ``None`` (read PostgreSQL) if absent or unreachable."""
    try:
        return await store.load_pipeline_row(execution_id)
    except Exception as exc:
        if not is_redis_outage(exc):
            raise
        return None
