"""The query API over real PostgreSQL: the seed's shapes, filters, pages and errors.

One fresh database per module, filled with rows built by the processor's own row
builders from folded histories; requests go through httpx's in-process ASGI transport.
Read-your-writes, auth and metrics are in test_api_access.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
import httpx
import pytest
from _api_support import (
    T0,
    TOPIC,
    FixedClock,
    problem,
    rich_history,
    running,
    write_history,
)
from _api_support import write_variables as write_vars
from _databases import MakeDatabase

from orchestrator.events import catalogue as c
from orchestrator.events.envelope import Envelope
from orchestrator.events.simulate import HistoryWriter
from orchestrator.events.state import ExecutionState, SharedVariable
from orchestrator.events.userdata import encode_user_data
from orchestrator.projections.api import ApiSettings, create_app

pytestmark = pytest.mark.integration

# (execution_id, pipeline_id, minutes after T0 it was created, status it reaches)
CATALOGUE = [
    ("e-00", "research", 0, "running"),
    ("e-01", "ingest", 10, "completed"),
    ("e-02", "research", 20, "failed"),
    ("e-03", "ingest", 30, "paused"),
    ("e-04", "research", 40, "initialized"),
    ("e-05", "ingest", 50, "validating"),
    ("e-06", "research", 60, "completed"),
    ("e-07a", "research", 70, "running"),  # e-07a and e-07b share a created_at
    ("e-07b", "research", 70, "running"),
]


def lifecycle(
    execution_id: str, pipeline_id: str, created: datetime, status: str
) -> list[Envelope]:
    """A clean history of a two-task execution that ends in ``status``."""
    w = HistoryWriter(
        execution_id, pipeline_id, FixedClock(), clock=created - timedelta(milliseconds=1)
    )
    specs = (c.TaskSpec(task_id="fetch"), c.TaskSpec(task_id="summarise", depends_on=("fetch",)))
    w.emit(c.ExecutionCreated(pipeline_id=pipeline_id, tasks=specs))
    if status == "initialized":
        return w.events
    w.emit(c.ExecutionValidationStarted())
    if status == "validating":
        return w.events
    w.emit(c.ExecutionValidationSucceeded())
    if status == "paused":
        w.emit(c.ExecutionPaused(reason="operator"))
    elif status == "failed":
        w.emit(c.ExecutionFailed(error="boom"))
    elif status == "completed":
        w.emit(c.ExecutionCompleted(outputs=encode_user_data({"report": "done"})))
    return w.events


@dataclass
class Seeded:
    rich: ExecutionState
    rich_events: list[Envelope]
    created: dict[str, datetime | None]


@pytest.fixture(scope="module")
async def seeded(dsn: str) -> Seeded:
    conn = await asyncpg.connect(dsn)
    try:
        created: dict[str, datetime | None] = {}
        for execution_id, pipeline_id, minutes, status in CATALOGUE:
            events = lifecycle(execution_id, pipeline_id, T0 + timedelta(minutes=minutes), status)
            state = await write_history(conn, events, partition=1, first_offset=100 * minutes)
            created[execution_id] = state.created_at
        # Rows without created_at (the fold always sets it; an old or hand-made row may not).
        for n, execution_id in enumerate(("e-null", "e-null2")):
            events = lifecycle(execution_id, "research", T0, "running")
            await write_history(
                conn, events, partition=1, first_offset=9000 + 10 * n, created_at_null=True
            )
            created[execution_id] = None
        rich_events = rich_history()
        rich = await write_history(conn, rich_events, partition=0, first_offset=40)
        created["exec_12345"] = rich.created_at
        await write_vars(
            conn,
            "research_pipeline",
            [
                SharedVariable(
                    name="quality_threshold", type="float", value=0.8, immutable=True,
                    updated_by="setup", updated_at=T0, version=1,
                ),
                SharedVariable(
                    name="search_results", type="list", value=["x", "y"],
                    updated_by="web_search", updated_at=T0, version=3,
                ),
                SharedVariable(name="gone", type="str", value=None, version=2, deleted=True),
            ],
        )  # fmt: skip
    finally:
        await conn.close()
    return Seeded(rich=rich, rich_events=rich_events, created=created)


@pytest.fixture(scope="module")
async def client(dsn: str, seeded: Seeded) -> AsyncIterator[httpx.AsyncClient]:
    settings = ApiSettings(database_url=dsn, api_token=None)
    async with running(create_app(settings)) as http:
        yield http


# --- executions ------------------------------------------------------------------------


async def test_an_execution_reads_as_the_seed_pipeline_state(
    client: httpx.AsyncClient, seeded: Seeded
) -> None:
    response = await client.get("/executions/exec_12345")

    assert response.status_code == 200
    body = response.json()
    rich = seeded.rich
    assert body["pipeline_id"] == "research_assistant"
    assert body["status"] == "running"
    assert body["current_task"] is None
    assert body["completed_tasks"] == ["web_search"]
    assert body["pending_tasks"] == ["analyze_results"]
    assert body["progress"] == 0.5
    assert body["context"] == {
        "user_id": "user_123",
        "input_data": {"q": "qc"},
        "configuration": None,
    }
    assert [(cp["checkpoint_id"], cp["task_id"]) for cp in body["checkpoints"]] == [
        ("cp-1", "web_search"),
        ("cp-2", None),
    ]
    assert (body["epoch"], body["owner"]) == (2, "node-2")
    assert body["last_sequence"] == rich.last_sequence == 9
    assert body["root_execution_id"] == "exec_12345"
    assert body["forked_from"] is None
    assert body["event_count"] == len(seeded.rich_events)
    assert body["position"] == f"{TOPIC}:0:{40 + len(seeded.rich_events) - 1}"
    assert datetime.fromisoformat(body["started_at"]) == rich.started_at


async def test_an_unknown_execution_is_404_naming_it(client: httpx.AsyncClient) -> None:
    response = await client.get("/executions/exec_nope")

    assert problem(response, 404) == {
        "type": "urn:orchestrator-state:problem:execution-not-found",
        "title": "Execution not found",
        "status": 404,
        "detail": "execution 'exec_nope' not found",
        "instance": "/executions/exec_nope",
        "execution_id": "exec_nope",
    }


async def test_executions_are_listed_newest_first_with_filters(
    client: httpx.AsyncClient, seeded: Seeded
) -> None:
    research = await client.get("/executions", params={"pipeline_id": "research"})
    done_or_failed = await client.get(
        "/executions", params=[("status", "completed"), ("status", "failed")]
    )
    window = await client.get(
        "/executions",
        params={
            "created_after": (T0 + timedelta(minutes=10)).isoformat(),
            "created_before": "2024-01-15T10:50:00",  # naive: taken as UTC
        },
    )

    assert [i["execution_id"] for i in research.json()["items"]] == [
        "e-null2", "e-null", "e-07b", "e-07a", "e-06", "e-04", "e-02", "e-00",
    ]  # fmt: skip
    assert [i["execution_id"] for i in done_or_failed.json()["items"]] == ["e-06", "e-02", "e-01"]
    assert [i["execution_id"] for i in window.json()["items"]] == ["e-04", "e-03", "e-02"]
    assert "exec_12345" not in [i["execution_id"] for i in research.json()["items"]]
    first = research.json()["items"][0]
    assert first["status"] == "running" and first["pipeline_id"] == "research"
    assert research.json()["next_cursor"] is None


async def test_pages_walk_every_execution_exactly_once(
    client: httpx.AsyncClient, seeded: Seeded
) -> None:
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(20):
        params: dict[str, str | int] = {"limit": 2}
        if cursor is not None:
            params["cursor"] = cursor
        page = (await client.get("/executions", params=params)).json()
        assert len(page["items"]) <= 2
        seen.extend(item["execution_id"] for item in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break

    dated = [e for e, when in seeded.created.items() if when is not None]
    expected = sorted((e for e in seeded.created if e not in dated), reverse=True)
    expected += sorted(dated, key=lambda e: (seeded.created[e], e), reverse=True)
    assert seen == expected


@pytest.mark.parametrize(
    ("path", "params", "parameter"),
    [
        ("/executions", {"limit": 0}, "limit"),
        ("/executions", {"limit": 501}, "limit"),
        ("/executions", {"limit": "many"}, "limit"),
        ("/executions", {"status": "sleeping"}, "status"),
        ("/executions", {"created_after": "yesterday"}, "created_after"),
        ("/executions", {"created_before": "0001-01-01T00:00:00+05:00"}, "created_before"),
        ("/executions", {"cursor": "not-a-cursor"}, "cursor"),
        ("/executions/exec_12345", {"position": "no-colons"}, "position"),
        ("/executions/exec_12345", {"position": f"{TOPIC}:0:-1"}, "position"),
        ("/executions/exec_12345", {"position": f"{TOPIC}:0:1", "wait_ms": -1}, "wait_ms"),
        ("/executions/exec_12345", {"position": f"{TOPIC}:0:1", "wait_ms": 10**6}, "wait_ms"),
        ("/executions/exec_12345/events", {"after": -2}, "after"),
        ("/executions/exec_12345/events", {"limit": 1001}, "limit"),
    ],
)
async def test_a_bad_query_parameter_is_422_naming_it(
    client: httpx.AsyncClient, path: str, params: dict[str, object], parameter: str
) -> None:
    response = await client.get(path, params=params)  # type: ignore[arg-type]

    assert response.status_code == 422
    assert [e["loc"][:2] for e in response.json()["errors"]] == [["query", parameter]]
    assert parameter in response.json()["detail"]


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/executions/a%00b", 404),
        ("/executions/a%00b/tasks", 404),
        ("/executions/a%00b/events", 404),
        ("/executions/a%00b/checkpoints", 404),
        ("/executions/a%00b/state", 404),
        ("/executions/%00/state", 404),
        ("/executions/a%00b/timeline.json", 404),
        ("/executions?pipeline_id=%00", 200),
        ("/namespaces/a%00b/variables", 200),
    ],
)
async def test_a_nul_character_matches_nothing(
    client: httpx.AsyncClient, path: str, status: int
) -> None:
    # PostgreSQL text cannot hold NUL: no row can match, and the driver must not fail.
    response = await client.get(path)

    assert response.status_code == status
    if status == 200:
        assert response.json().get("items", response.json().get("variables")) in ([], {})


# --- tasks, checkpoints, events ----------------------------------------------------------


async def test_tasks_come_in_declaration_order_as_the_seed_task_state(
    client: httpx.AsyncClient,
) -> None:
    body = (await client.get("/executions/exec_12345/tasks")).json()

    assert [t["task_id"] for t in body["items"]] == ["web_search", "analyze_results"]
    search = body["items"][0]
    assert (search["status"], search["attempts"]) == ("completed", 1)
    assert search["inputs"] == {"q": 1}
    assert search["outputs"] == {"results": ["a"]}
    assert search["execution_details"]["duration"] == 150.5
    assert search["execution_details"]["memory_used"] == "512MB"
    assert body["items"][1]["depends_on"] == ["web_search"]


async def test_checkpoints_come_oldest_first_with_their_data(client: httpx.AsyncClient) -> None:
    body = (await client.get("/executions/exec_12345/checkpoints")).json()

    assert [cp["checkpoint_id"] for cp in body["items"]] == ["cp-1", "cp-2"]
    assert body["items"][0]["data"] == {"partial": [1, 2]}
    assert body["items"][0]["progress"] == 0.25
    assert body["items"][0]["sequence"] < body["items"][1]["sequence"]
    assert body["next_after"] is None


async def test_checkpoints_never_come_more_than_a_page_at_a_time(
    client: httpx.AsyncClient,
) -> None:
    first = (await client.get("/executions/exec_12345/checkpoints", params={"limit": 1})).json()
    assert [cp["checkpoint_id"] for cp in first["items"]] == ["cp-1"]
    params = {"limit": 1, "after": first["next_after"]}
    second = (await client.get("/executions/exec_12345/checkpoints", params=params)).json()
    assert [cp["checkpoint_id"] for cp in second["items"]] == ["cp-2"]
    assert second["next_after"] is None


async def test_a_checkpoint_saved_again_is_listed_once_with_its_newest_data(
    make_database: MakeDatabase,
) -> None:
    """Withdrawn and saved again under the same id: the rows hold both saves (0019); the
    listing shows the id once, as its newest save and with that save's data."""
    w = HistoryWriter("exec_resaved", "research", FixedClock(), clock=T0)
    for payload in lifecycle("exec_resaved", "research", T0, "running")[:3]:
        w.emit(payload.payload)
    w.emit(c.CheckpointSaved(checkpoint_id="r0", name="one", data=encode_user_data(1)))
    w.emit(c.CheckpointSaved(checkpoint_id="r1", name="two", data=encode_user_data(2)))
    w.emit(c.CheckpointsDeleted(checkpoint_ids=("r0",)))
    w.emit(c.CheckpointSaved(checkpoint_id="r0", name="again", data=encode_user_data(3)))
    dsn = await make_database()  # its own: the module's database lists a fixed catalogue
    conn = await asyncpg.connect(dsn)
    try:
        await write_history(conn, w.events)
    finally:
        await conn.close()
    async with running(create_app(ApiSettings(database_url=dsn, api_token=None))) as client:
        body = (await client.get("/executions/exec_resaved/checkpoints")).json()
    assert [(cp["checkpoint_id"], cp["name"], cp["data"]) for cp in body["items"]] == [
        ("r1", "two", 2),
        ("r0", "again", 3),
    ]


async def test_events_page_through_the_archive_in_log_order(
    client: httpx.AsyncClient, seeded: Seeded
) -> None:
    offsets: list[int] = []
    outcomes: list[str] = []
    after = -1
    while True:
        page = (
            await client.get("/executions/exec_12345/events", params={"after": after, "limit": 3})
        ).json()
        offsets += [e["offset"] for e in page["items"]]
        outcomes += [e["outcome"] for e in page["items"]]
        if page["next_after"] is None:
            break
        after = page["next_after"]

    assert offsets == list(range(40, 40 + len(seeded.rich_events)))
    assert outcomes.count("duplicate") == 1
    first = (await client.get("/executions/exec_12345/events", params={"limit": 1})).json()
    event = first["items"][0]
    assert event["event_type"] == "ExecutionCreated"
    assert event["position"] == f"{TOPIC}:0:40"
    assert event["payload"]["pipeline_id"] == "research_assistant"


@pytest.mark.parametrize("resource", ["tasks", "checkpoints", "events"])
async def test_the_history_of_an_unknown_execution_is_404(
    client: httpx.AsyncClient, resource: str
) -> None:
    response = await client.get(f"/executions/exec_nope/{resource}")

    assert response.status_code == 404
    assert response.json()["execution_id"] == "exec_nope"


async def test_an_execution_without_checkpoints_lists_none(client: httpx.AsyncClient) -> None:
    response = await client.get("/executions/e-00/checkpoints")

    assert response.status_code == 200
    assert response.json()["items"] == []


# --- shared state ------------------------------------------------------------------------


async def test_namespace_variables_read_as_the_seed_shared_state(
    client: httpx.AsyncClient,
) -> None:
    body = (await client.get("/namespaces/research_pipeline/variables")).json()
    empty = (await client.get("/namespaces/never_written/variables")).json()

    assert body["namespace"] == "research_pipeline"
    assert body["variables"] == {
        "quality_threshold": {
            "type": "float", "value": 0.8, "updated_by": "setup",
            "updated_at": "2024-01-15T10:00:00Z", "immutable": True, "version": 1,
        },
        "search_results": {
            "type": "list", "value": ["x", "y"], "updated_by": "web_search",
            "updated_at": "2024-01-15T10:00:00Z", "immutable": False, "version": 3,
        },
    }  # fmt: skip
    assert empty == {"namespace": "never_written", "variables": {}}
