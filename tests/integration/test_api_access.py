"""The query API's access rules over real PostgreSQL: read-your-writes (wait or 504),
bearer auth, health, metrics, and a clear error when the tables are missing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
from _api_support import (
    TOPIC,
    advance_offsets,
    problem,
    rich_history,
    running,
    write_history,
)
from _databases import MakeDatabase
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.projections.api import ApiSettings, create_app

pytestmark = pytest.mark.integration

PROJECTION = "read_models"
TOKEN = "s3cret-token-value"


@pytest.fixture(scope="module")
async def dsn(dsn: str) -> str:
    """The module's database, holding the rich history."""
    conn = await asyncpg.connect(dsn)
    try:
        await write_history(conn, rich_history(), first_offset=40)
    finally:
        await conn.close()
    return dsn


@pytest.fixture(scope="module")
async def client(dsn: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = ApiSettings(database_url=dsn, api_token=None, projection=PROJECTION)
    async with running(create_app(settings)) as http:
        yield http


@pytest.fixture(scope="module")
async def guarded(dsn: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = ApiSettings(database_url=dsn, api_token=TOKEN)
    async with running(create_app(settings)) as http:
        yield http


# --- read-your-writes --------------------------------------------------------------------


async def test_a_reached_position_answers_at_once(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await advance_offsets(db, PROJECTION, partition=2, next_offset=50)

    response = await client.get(
        "/executions/exec_12345", params={"position": f"{TOPIC}:2:49", "wait_ms": 0}
    )

    assert response.status_code == 200


async def test_an_unreached_position_is_504_with_a_clear_error(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await advance_offsets(db, PROJECTION, partition=3, next_offset=50)

    response = await client.get("/executions", params={"position": f"{TOPIC}:3:50", "wait_ms": 150})
    other_topic = await client.get(
        "/namespaces/x/variables", params={"position": "elsewhere:3:0", "wait_ms": 0}
    )

    assert problem(response, 504) == {
        "type": "urn:orchestrator-state:problem:read-model-behind",
        "title": "Read model behind the requested position",
        "status": 504,
        "detail": f"read model has not reached position {TOPIC}:3:50 within 150 ms",
        "instance": "/executions",
        "position": f"{TOPIC}:3:50",
        "wait_ms": 150,
    }
    assert other_topic.status_code == 504


async def test_a_read_waits_until_the_read_model_applies_its_position(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await advance_offsets(db, PROJECTION, partition=4, next_offset=10)
    request = asyncio.create_task(
        client.get(
            "/executions/exec_12345/tasks",
            params={"position": f"{TOPIC}:4:12", "wait_ms": 20_000},
        )
    )
    await asyncio.sleep(0.3)
    assert not request.done()

    await advance_offsets(db, PROJECTION, partition=4, next_offset=11)  # not far enough
    await asyncio.sleep(0.2)
    assert not request.done()
    await advance_offsets(db, PROJECTION, partition=4, next_offset=13)

    response = await asyncio.wait_for(request, timeout=10)
    assert response.status_code == 200


async def test_offsets_of_another_projection_do_not_count(
    client: httpx.AsyncClient, db: asyncpg.Connection
) -> None:
    await advance_offsets(db, "some_other_projection", partition=5, next_offset=100)

    response = await client.get(
        "/executions/exec_12345", params={"position": f"{TOPIC}:5:1", "wait_ms": 50}
    )

    assert response.status_code == 504


# --- operations --------------------------------------------------------------------------


async def test_health_checks_the_database(client: httpx.AsyncClient) -> None:
    response = await client.get("/health")

    assert response.status_code == 200
    assert response.json() == {"status": "ok", "database": "ok", "notifications": "ok"}


async def test_metrics_use_the_seed_names(client: httpx.AsyncClient) -> None:
    await client.get("/executions/exec_12345")
    await client.get("/executions/exec_nope")

    response = await client.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }
    ops = "orchestrator_state_operations_total"
    api = ("component", "api")
    ok = (api, ("operation", "get_execution"), ("outcome", "ok"))
    missing = (api, ("operation", "get_execution"), ("outcome", "client_error"))
    assert samples[(ops, ok)] >= 1
    assert samples[(ops, missing)] >= 1
    duration = "orchestrator_state_operation_duration_seconds_count"
    assert samples[(duration, (api, ("operation", "get_execution")))] >= 2
    assert samples[("orchestrator_state_checkpoints", ())] == 2
    size = "orchestrator_state_read_model_size_bytes"
    assert samples[(size, (("table", "public.pipeline_states"),))] > 0
    assert samples[(size, (("table", "public.execution_events"),))] > 0


# --- auth and failures -------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/executions", "/executions/exec_12345/events", "/metrics", "/openapi.json"]
)
async def test_a_configured_token_is_required_everywhere_but_health(
    guarded: httpx.AsyncClient, path: str
) -> None:
    missing = await guarded.get(path)
    wrong = await guarded.get(path, headers={"Authorization": "Bearer nope"})
    basic = await guarded.get(path, headers={"Authorization": f"Basic {TOKEN}"})
    right = await guarded.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
    health = await guarded.get("/health")

    assert [missing.status_code, wrong.status_code, basic.status_code] == [401, 401, 401]
    assert missing.headers["www-authenticate"] == "Bearer"
    assert missing.json()["detail"] == "missing or invalid bearer token"
    assert missing.json()["status"] == 401
    assert right.status_code == 200
    assert health.status_code == 200


async def test_auth_comes_before_validation_and_waiting(guarded: httpx.AsyncClient) -> None:
    params = {"limit": 0, "position": f"{TOPIC}:0:10000", "wait_ms": 30_000}

    # Not 504 after 30 s, nor 422: an unauthenticated caller learns nothing and waits not.
    response = await asyncio.wait_for(guarded.get("/executions", params=params), timeout=15)

    assert response.status_code == 401


async def test_the_token_never_shows_in_reprs_or_logs(
    guarded: httpx.AsyncClient, dsn: str, caplog: pytest.LogCaptureFixture
) -> None:
    settings = ApiSettings(database_url=dsn, api_token=TOKEN)
    with caplog.at_level(logging.DEBUG):
        await guarded.get("/executions", headers={"Authorization": f"Bearer {TOKEN}"})
        await guarded.get("/executions", headers={"Authorization": f"Bearer {TOKEN}x"})

    assert TOKEN not in repr(settings) and TOKEN not in str(settings.model_dump())
    assert TOKEN not in caplog.text


async def test_missing_read_model_tables_are_a_clear_503(make_database: MakeDatabase) -> None:
    empty = await make_database(migrated=False)
    async with running(create_app(ApiSettings(database_url=empty))) as http:
        response = await http.get("/executions")
        health = await http.get("/health")

    assert response.status_code == 503
    assert "run the migrations" in response.json()["detail"]
    assert health.status_code == 200
