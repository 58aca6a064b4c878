"""Shared helpers of the query-API tests: read-model rows and a running app.

Rows are written with the processor's own row builders (``projections.readmodel``)
from states folded by ``events.fold``, so the API reads exactly the shapes the
processor writes.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import asyncpg
import httpx
import uvicorn
from fastapi import FastAPI

from orchestrator.events import catalogue as c
from orchestrator.events.catalogue import CheckpointSaved
from orchestrator.events.codec import default_codec
from orchestrator.events.envelope import Envelope
from orchestrator.events.fold import Outcome, step
from orchestrator.events.simulate import HistoryWriter
from orchestrator.events.state import ExecutionState, SharedVariable
from orchestrator.events.userdata import encode_user_data
from orchestrator.projections import readmodel as rm
from orchestrator.projections.settings import ReadModelTables
from orchestrator.projections.store import OFFSETS_CHANNEL, STATE_CHANGES_CHANNEL, upsert_sql

TOPIC = "orchestrator.pipeline.events"
TABLES = ReadModelTables()
T0 = datetime(2024, 1, 15, 10, 0, tzinfo=UTC)


@asynccontextmanager
async def serving(app: FastAPI) -> AsyncIterator[str]:
    """``app`` served for real by uvicorn on a loopback port; yields its base URL."""
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, timeout_graceful_shutdown=1)
    )
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
            raise AssertionError("uvicorn stopped before it started")
        await asyncio.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, timeout=10)


@asynccontextmanager
async def running(app: FastAPI, **client_args: object) -> AsyncIterator[httpx.AsyncClient]:
    """The app with its lifespan entered, and an in-process client for it."""
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(
            transport=transport,
            base_url="http://api.test",
            **client_args,  # type: ignore[arg-type]
        ) as client:
            yield client


async def _upsert(
    conn: asyncpg.Connection,
    table: str,
    columns: Sequence[tuple[str, str]],
    key: list[str],
    rows: list[rm.Row],
) -> None:
    if rows:
        sql = upsert_sql(table, columns, key)
        await conn.execute(sql, *[list(col) for col in zip(*rows, strict=True)])


async def write_history(
    conn: asyncpg.Connection,
    events: Sequence[Envelope],
    *,
    partition: int = 0,
    first_offset: int = 0,
    created_at_null: bool = False,
) -> ExecutionState:
    """Fold ``events`` and write the state, tasks, checkpoints and archive rows."""
    state: ExecutionState | None = None
    archive: list[rm.Row] = []
    checkpoints: list[rm.Row] = []
    offset = first_offset - 1
    for offset, event in enumerate(events, start=first_offset):
        result = step(state, event)
        archive.append(
            (
                TOPIC, partition, offset, event.execution_id, event.pipeline_id, event.sequence,
                event.epoch, event.event_id, event.event_type, event.occurred_at,
                result.outcome.value, result.reason, rm.dumps(rm.payload_json(event)),
                default_codec().encode(event),  # the record: checkpoint data is read from it
            )
        )  # fmt: skip
        if result.outcome is Outcome.APPLIED and isinstance(event.payload, CheckpointSaved):
            checkpoints.append(rm.checkpoint_row(result.state, event))
        state = result.state
    assert state is not None, "the history must create the execution"
    row = rm.pipeline_row(state, event_count=len(events), last_position=(TOPIC, partition, offset))
    if created_at_null:
        row = (*row[:6], None, *row[7:])
    await _upsert(conn, TABLES.pipeline_states, rm.PIPELINE_COLUMNS, ["execution_id"], [row])
    await _upsert(
        conn, TABLES.task_states, rm.TASK_COLUMNS, ["execution_id", "task_id"],
        rm.task_rows(state, state.updated_at),
    )  # fmt: skip
    await _upsert(
        conn, TABLES.checkpoints, rm.CHECKPOINT_COLUMNS, ["execution_id", "sequence"], checkpoints
    )
    await _upsert(
        conn, TABLES.execution_events, rm.EVENT_COLUMNS, ["topic", "partition", "offset"], archive
    )
    return state


async def write_variables(
    conn: asyncpg.Connection, namespace: str, variables: Sequence[SharedVariable]
) -> None:
    """Shared-variable rows as the processor writes them."""
    rows = [rm.shared_variable_row(namespace, v) for v in variables]
    await _upsert(
        conn, TABLES.shared_variables, rm.SHARED_VARIABLE_COLUMNS, ["namespace", "name"], rows
    )


async def advance_offsets(
    conn: asyncpg.Connection, projection: str, partition: int, next_offset: int
) -> None:
    """Record that ``projection`` applied ``TOPIC``'s partition up to ``next_offset`` and
    NOTIFY as the processor does after a commit."""
    await conn.execute(
        "INSERT INTO projection_offsets (projection, topic, partition, next_offset)"
        " VALUES ($1, $2, $3, $4) ON CONFLICT (projection, topic, partition)"
        " DO UPDATE SET next_offset = EXCLUDED.next_offset, updated_at = now()",
        projection,
        TOPIC,
        partition,
        next_offset,
    )
    await conn.execute("SELECT pg_notify($1, $2)", OFFSETS_CHANNEL, projection)


async def notify_changed(conn: asyncpg.Connection, *execution_ids: str) -> None:
    """The processor's post-commit NOTIFY of changed executions."""
    await conn.execute("SELECT pg_notify($1, $2)", STATE_CHANGES_CHANNEL, json.dumps(execution_ids))


@asynccontextmanager
async def execution_stream(
    base_url: str, execution_id: str, *, http_timeout: float = 10, **params: Any
) -> AsyncIterator[httpx.Response]:
    """The open response of ``GET /executions/{execution_id}/stream`` (server-sent
    events; ``params``: its query, e.g. ``position``, ``wait_ms``)."""
    async with (
        httpx.AsyncClient(base_url=base_url, timeout=http_timeout) as client,
        client.stream("GET", f"/executions/{execution_id}/stream", params=params) as response,
    ):
        yield response


def problem(response: httpx.Response, status: int) -> Any:
    """The problem-details body of ``response``, once its status and media type are checked."""
    assert response.status_code == status
    assert response.headers["content-type"] == "application/problem+json"
    return response.json()


async def sse_events(response: httpx.Response) -> AsyncIterator[dict[str, str]]:
    """Parse a text/event-stream into ``{field: value}`` events (comments skipped)."""
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if not line:
            if fields:
                yield fields
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


class FixedClock(random.Random):
    """A history clock whose every step is exactly 1 ms: predictable timestamps."""

    def randint(self, a: int, b: int) -> int:
        return 1


def rich_history() -> list[Envelope]:
    """exec_12345: tasks, a checkpoint, a writer takeover and a duplicate delivery."""
    w = HistoryWriter("exec_12345", "research_assistant", FixedClock(), clock=T0)
    specs = (
        c.TaskSpec(task_id="web_search"),
        c.TaskSpec(task_id="analyze_results", depends_on=("web_search",)),
    )
    context = c.ExecutionContext(user_id="user_123", input_data=encode_user_data({"q": "qc"}))
    w.emit(c.ExecutionCreated(pipeline_id="research_assistant", context=context, tasks=specs))
    w.emit(c.ExecutionValidationStarted())
    w.emit(c.ExecutionValidationSucceeded())
    w.emit(c.TaskScheduled(task_id="web_search"))
    w.emit(c.TaskStarted(task_id="web_search", attempt=1, inputs=encode_user_data({"q": 1})))
    w.take_over()
    w.emit(
        c.CheckpointSaved(
            checkpoint_id="cp-1",
            name="after_search",
            task_id="web_search",
            data=encode_user_data({"partial": [1, 2]}),
            progress=0.25,
        )
    )
    w.emit(
        c.TaskCompleted(
            task_id="web_search",
            outputs=encode_user_data({"results": ["a"]}),
            details=c.ExecutionDetails(duration=150.5, memory_used="512MB", model_calls=3),
        )
    )
    w.emit(c.CheckpointSaved(checkpoint_id="cp-2", name="after_part_2", task_id=None))
    w.events.append(w.events[-1])  # the producer retried: a duplicate delivery
    w.emit(c.TaskScheduled(task_id="analyze_results"))
    return w.events
