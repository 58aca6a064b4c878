"""An execution's tasks, checkpoints and archived events."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any

from fastapi import APIRouter, Query

from orchestrator.projections.api._convert import event_out, task_out
from orchestrator.projections.api._deps import ApiContext, Context
from orchestrator.projections.api.errors import ExecutionNotFound
from orchestrator.projections.api.models import CheckpointList, CheckpointOut, EventPage, TaskList
from orchestrator.projections.api.routes._common import NOT_FOUND, ExecutionId
from orchestrator.projections.checkpointdata import checkpoint_values

router = APIRouter(tags=["executions"])

_INT64_MAX = 2**63 - 1
_FROM_START = "to start after (-1: the beginning)."
SequenceAfter = Annotated[int, Query(ge=-1, le=_INT64_MAX, description=f"Sequence {_FROM_START}")]
OffsetAfter = Annotated[int, Query(ge=-1, le=_INT64_MAX, description=f"Log offset {_FROM_START}")]
Fetch = Callable[[Any, str, int, int], Awaitable[Sequence[Any]]]


async def _require(ctx: ApiContext, execution_id: str) -> None:
    """An empty answer is only an answer if the execution exists."""
    if not await ctx.queries.execution_exists(ctx.pool, execution_id):
        raise ExecutionNotFound(execution_id)


async def _page(
    ctx: ApiContext, execution_id: str, fetch: Fetch, after: int, limit: int
) -> Sequence[Any]:
    """Up to ``limit + 1`` rows after ``after`` (one more says there is a next page)."""
    rows = await fetch(ctx.pool, execution_id, after, limit + 1)
    if not rows:
        await _require(ctx, execution_id)
    return rows


@router.get("/executions/{execution_id}/tasks", response_model=TaskList, responses=NOT_FOUND)
async def list_tasks(ctx: Context, execution_id: ExecutionId) -> TaskList:
    """Every task of the execution (the seed's task_state), in creation order."""
    rows = await ctx.queries.tasks(ctx.pool, execution_id)
    if not rows:
        await _require(ctx, execution_id)
    return TaskList(execution_id=execution_id, items=[task_out(row) for row in rows])


@router.get(
    "/executions/{execution_id}/checkpoints", response_model=CheckpointList, responses=NOT_FOUND
)
async def list_checkpoints(
    ctx: Context,
    execution_id: ExecutionId,
    after: SequenceAfter = -1,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size.")] = 100,
) -> CheckpointList:
    """The execution's checkpoints with their data, oldest first, a page at a time."""
    rows = await _page(ctx, execution_id, ctx.queries.checkpoints, after, limit)
    page = rows[:limit]
    wanted = {row["checkpoint_id"]: row["sequence"] for row in page}
    data = await checkpoint_values(ctx.pool, ctx.queries.tables, execution_id, wanted)
    items = [
        CheckpointOut.model_validate({**dict(row), "data": data[row["checkpoint_id"]]})
        for row in page
    ]
    next_after = items[-1].sequence if len(rows) > limit else None
    return CheckpointList(execution_id=execution_id, items=items, next_after=next_after)


@router.get("/executions/{execution_id}/events", response_model=EventPage, responses=NOT_FOUND)
async def list_events(
    ctx: Context,
    execution_id: ExecutionId,
    after: OffsetAfter = -1,
    limit: Annotated[int, Query(ge=1, le=1000, description="Page size.")] = 100,
) -> EventPage:
    """The execution's archived events in log order, with the fold's verdict on each."""
    rows = await _page(ctx, execution_id, ctx.queries.events, after, limit)
    items = [event_out(row) for row in rows[:limit]]
    next_after = items[-1].offset if len(rows) > limit else None
    return EventPage(execution_id=execution_id, items=items, next_after=next_after)
