"""``/executions/{id}/stream``: server-sent events of one execution's state.

The first event is the current state; after that, one event per change the
processor NOTIFYs (bursts coalesce: each event is the state as it is when read).
Idle streams send a comment line every ``stream_heartbeat_seconds`` so proxies keep
them open and a vanished client is noticed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter
from fastapi.responses import StreamingResponse

from orchestrator.projections.api._convert import execution_out
from orchestrator.projections.api._deps import ApiContext, Context
from orchestrator.projections.api._listener import Subscription
from orchestrator.projections.api.errors import ExecutionNotFound
from orchestrator.projections.api.models import ExecutionOut
from orchestrator.projections.api.routes._common import ExecutionId

router = APIRouter(tags=["executions"])

_STREAM_RESPONSES: dict[int | str, dict[str, object]] = {
    200: {
        "description": "`event: state` messages whose `data` is the execution (as GET "
        "/executions/{id}) and whose `id` is its last_sequence.",
        "content": {"text/event-stream": {"schema": {"type": "string"}}},
    },
    404: {"description": "No such execution in the read model."},
}


def _frame(state: ExecutionOut) -> str:
    return f"id: {state.last_sequence}\nevent: state\ndata: {state.model_dump_json()}\n\n"


async def _frames(ctx: ApiContext, sub: Subscription, first: ExecutionOut) -> AsyncIterator[str]:
    with sub:
        last = first
        yield _frame(first)
        heartbeat = ctx.settings.stream_heartbeat_seconds
        while True:
            woken = await sub.wait(heartbeat)
            if sub.closed:
                return
            if not woken:
                yield ": keep-alive\n\n"
                continue
            row = await ctx.queries.execution(ctx.pool, first.execution_id)
            if row is None:
                continue  # a rebuild swapping tables in: the row comes back
            current = execution_out(row)
            if current != last:
                last = current
                yield _frame(current)


@router.get(
    "/executions/{execution_id}/stream",
    response_class=StreamingResponse,
    responses=_STREAM_RESPONSES,
)
async def stream_execution(ctx: Context, execution_id: ExecutionId) -> StreamingResponse:
    """Server-sent events: the execution's state now, then again after every change."""
    # Subscribe before reading, so no change can slip in between.
    sub = ctx.listener.subscribe(ctx.settings.state_channel, execution_id)
    try:
        row = await ctx.queries.execution(ctx.pool, execution_id)
        if row is None:
            raise ExecutionNotFound(execution_id)
    except BaseException:
        sub.close()
        raise
    return StreamingResponse(
        _frames(ctx, sub, execution_out(row)),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
