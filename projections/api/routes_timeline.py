"""The timeline page of one execution, and the JSON it reads.

* ``GET /executions/{id}/timeline``: a self-contained HTML page (inline JS and CSS,
  nothing from a CDN): tasks on a time axis with their attempts, waits, retries and
  checkpoints, the execution's status phases and owners, and a slider / event list
  that shows the state at any event. It holds no data, so it is served without the
  bearer token; it reads the two JSON endpoints below, sending the token it finds in
  the page's fragment (``#token=...``), which never leaves the browser.
* ``GET /executions/{id}/timeline.json``: the page's data (``_timeline.build_timeline``).
* ``GET /executions/{id}/state?at=SEQ``: the state after the event at ``SEQ``, the
  state before it, and the event, from the app's state source (snapshots + archive
  when the process installed one with ``set_state_source``, else the archive).

:func:`include` adds ``page_router`` without auth and ``router`` with the app's auth
and read-your-writes dependencies, like the other readers.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from importlib import resources
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.responses import HTMLResponse

from orchestrator.events import state_dict
from orchestrator.projections.api._deps import Context
from orchestrator.projections.api._timeline import (
    HistoryStateSource,
    StateAt,
    StateSource,
    build_timeline,
    set_state_source,
    state_source,
)
from orchestrator.projections.api.errors import ExecutionNotFound
from orchestrator.projections.api.routes._common import NOT_FOUND, ExecutionId
from orchestrator.projections.readmodel import payload_json

__all__ = [
    "HistoryStateSource",
    "StateAt",
    "StateSource",
    "include",
    "page_router",
    "router",
    "set_state_source",
]

router = APIRouter(tags=["timeline"])
page_router = APIRouter(tags=["timeline"])

_INT64_MAX = 2**63 - 1


def include(app: FastAPI, *, dependencies: Sequence[Any], responses: dict[int | str, Any]) -> None:
    """Add the page (no auth: it holds no data) and its JSON endpoints (``dependencies``:
    the app's auth and read barrier) to ``app``."""
    app.include_router(page_router)
    app.include_router(router, dependencies=list(dependencies), responses=responses)


@functools.cache
def _page() -> str:
    return (
        resources.files("orchestrator.projections.api")
        .joinpath("static/timeline.html")
        .read_text("utf-8")
    )


@page_router.get(
    "/executions/{execution_id}/timeline",
    response_class=HTMLResponse,
    summary="The timeline page of one execution (HTML)",
)
async def timeline_page(execution_id: ExecutionId) -> HTMLResponse:
    """Tasks on a time axis, and the state at any event (reads the JSON endpoints)."""
    return HTMLResponse(_page(), headers={"Cache-Control": "no-cache"})


TIMELINE_MAX_EVENTS = 10_000
"""The timeline draws at most this many events (the oldest; ``truncated`` says so)."""


@router.get("/executions/{execution_id}/timeline.json", responses=NOT_FOUND)
async def timeline_data(ctx: Context, execution_id: ExecutionId) -> dict[str, Any]:
    """Spans of every task attempt, waits, retries, checkpoints, status phases, owners,
    and the event list, from the archived events."""
    row = await ctx.queries.execution(ctx.pool, execution_id)
    if row is None:
        raise ExecutionNotFound(execution_id)
    rows = await ctx.queries.timeline_events(ctx.pool, execution_id, TIMELINE_MAX_EVENTS + 1)
    truncated = len(rows) > TIMELINE_MAX_EVENTS
    body = build_timeline(rows[:TIMELINE_MAX_EVENTS])
    body["truncated"] = truncated
    body["execution"] = jsonable_encoder(
        {
            key: row[key]
            for key in (
                "execution_id",
                "pipeline_id",
                "status",
                "progress",
                "created_at",
                "completed_at",
                "last_sequence",
                "event_count",
                "epoch",
                "forked_from",
                "fork_sequence",
                "root_execution_id",
                "error",
            )
        }
    )
    return body


@router.get("/executions/{execution_id}/state", responses=NOT_FOUND)
async def state_at(
    ctx: Context,
    request: Request,
    execution_id: ExecutionId,
    at: Annotated[
        int | None,
        Query(ge=1, le=_INT64_MAX, description="Sequence of the event (default: the latest)."),
    ] = None,
) -> dict[str, Any]:
    """The state after the event at sequence ``at``, the state before it, and the event."""
    if "\x00" in execution_id:  # PostgreSQL text cannot hold NUL: no execution has it
        raise ExecutionNotFound(execution_id)
    source = state_source(request.app, ctx.settings.tables)
    found = await source.state_at(ctx.pool, execution_id, at)
    if found is None:
        raise ExecutionNotFound(execution_id)
    event = found.event
    return {
        "execution_id": execution_id,
        "at": found.state.last_sequence,
        "source": found.source,
        "state": jsonable_encoder(state_dict(found.state)),
        "before": None if found.before is None else jsonable_encoder(state_dict(found.before)),
        "event": None
        if event is None
        else {
            "sequence": event.sequence,
            "event_type": event.event_type,
            "occurred_at": event.occurred_at.isoformat(),
            "epoch": event.epoch,
            "producer": event.producer,
            "position": None if found.position is None else found.position.token(),
            "payload": jsonable_encoder(payload_json(event)),
        },
    }
