"""Property-based run of the OpenAPI document against the app: no request, however
odd, gets a server error, and every answer matches the documented status codes,
content types and schemas.

The one documented 5xx is 504 for a ``position`` the read model has not reached; the
app here waits at most 20 ms, and the check accepts that answer only in that shape.
The SSE stream never ends, so it is left out (tests/integration/test_api_server.py
covers it).
"""

from __future__ import annotations

from collections.abc import Iterator

import asyncpg
import pytest
import schemathesis
from _api_support import write_history, write_variables
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.python import asgi

from orchestrator.events.simulate import simulate_execution
from orchestrator.events.state import SharedVariable
from orchestrator.projections.api import ApiSettings, create_app

pytestmark = pytest.mark.integration


def _settings(database_url: str) -> ApiSettings:
    """The app under test: no token, and waits of at most 20 ms (so a 504 comes fast)."""
    return ApiSettings(database_url=database_url, api_token=None, default_wait_ms=0, max_wait_ms=20)


# The OpenAPI document depends on the settings only (building an app connects to
# nothing), so it is loaded at collection; requests go to an app on a fresh database.
# (schemathesis' lazy `from_fixture` loader fails on pytest 9: it sets `Function._nodeid`.)
schema = schemathesis.openapi.from_dict(
    create_app(_settings("postgresql://unused@127.0.0.1/unused")).openapi()
).exclude(path_regex=r"/stream$")


@pytest.fixture(scope="module")
async def dsn(dsn: str) -> str:
    """The module's database, holding three executions and a shared variable."""
    import random

    conn = await asyncpg.connect(dsn)
    try:
        rng = random.Random(7)
        for i in range(3):
            await write_history(
                conn, simulate_execution(f"exec_{i}", rng, tasks=3), first_offset=100 * i
            )
        await write_variables(
            conn, "ns", [SharedVariable(name="v", type="int", value=1, version=1)]
        )
    finally:
        await conn.close()
    return dsn


@pytest.fixture(scope="module")
def app(dsn: str) -> Iterator[FastAPI]:
    yield create_app(_settings(dsn))
    asgi.shutdown_lifespans()  # schemathesis ran the lifespan: close the pool before the drop


def _no_server_error_but_the_documented_504(ctx, response, case):  # type: ignore[no-untyped-def]
    """A 504 is the documented answer to an unreached ``position``; any other 5xx fails."""
    if response.status_code == 504:
        body = response.json()
        assert case.query and "position" in case.query, "504 without a position"
        assert body["detail"].startswith("read model has not reached position"), body
        return None
    return not_a_server_error(ctx, response, case)


@schema.parametrize()
@settings(
    max_examples=25,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_request_gets_a_server_error(case: schemathesis.Case, app: FastAPI) -> None:
    case.call_and_validate(
        app=app,
        checks=[
            _no_server_error_but_the_documented_504,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ],
    )
