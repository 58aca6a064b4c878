"""The query API's pure parts: cursors, position tokens, timestamps, settings, payloads."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta, timezone
from typing import get_args

import pytest
from fastapi.exceptions import RequestValidationError
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from orchestrator.events.envelope import Position
from orchestrator.events.machines import PIPELINE_MACHINE
from orchestrator.projections.api import ApiSettings, create_app
from orchestrator.projections.api._listener import StateChangeListener, _keys
from orchestrator.projections.api._params import decode_cursor, encode_cursor, parse_position, utc
from orchestrator.projections.api.models import PipelineStatus


def _parameter(error: RequestValidationError) -> str:
    (detail,) = error.errors()
    return str(detail["loc"][1])


@given(
    st.one_of(st.none(), st.datetimes(timezones=st.just(UTC))),
    st.text().filter(lambda s: "\x00" not in s),
)
def test_a_cursor_round_trips(created_at: datetime | None, execution_id: str) -> None:
    assert decode_cursor(encode_cursor(created_at, execution_id)) == (created_at, execution_id)


@pytest.mark.parametrize(
    "token",
    ["", "x", "!!!", "bnVsbA", encode_cursor(None, "a")[:-2] + "@@", "WzEsMiwzXQ"],
)
def test_a_malformed_cursor_is_a_422_naming_cursor(token: str) -> None:
    with pytest.raises(RequestValidationError) as caught:
        decode_cursor(token)
    assert _parameter(caught.value) == "cursor"


def test_a_position_token_made_by_an_append_parses() -> None:
    position = Position("orchestrator.pipeline.events", 3, 1207)
    assert parse_position(position.token()) == position
    assert parse_position("a:b:c:0:5") == Position("a:b:c", 0, 5)  # topics may hold ':'


@pytest.mark.parametrize(
    "token",
    ["", "topic", "topic:1", ":1:2", "t:x:1", "t:1:x", "t:-1:0", "t:0:-5", f"t:0:{2**63}",
     f"t:{2**31}:0", "t\x00:0:0"],
)  # fmt: skip
def test_a_malformed_position_is_a_422_naming_position(token: str) -> None:
    with pytest.raises(RequestValidationError) as caught:
        parse_position(token)
    assert _parameter(caught.value) == "position"


def test_naive_times_are_utc_and_unrepresentable_ones_are_422() -> None:
    assert utc(datetime(2024, 1, 15, 10), "created_after") == datetime(2024, 1, 15, 10, tzinfo=UTC)
    plus_two = datetime(2024, 1, 15, 12, tzinfo=timezone(timedelta(hours=2)))
    assert utc(plus_two, "x") == datetime(2024, 1, 15, 10, tzinfo=UTC)
    with pytest.raises(RequestValidationError) as caught:
        utc(datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=5))), "created_before")
    assert _parameter(caught.value) == "created_before"


def test_the_status_filter_lists_the_pipeline_machine_states() -> None:
    assert get_args(PipelineStatus) == PIPELINE_MACHINE.states


@pytest.mark.parametrize(
    ("payload", "keys"),
    [
        ('["exec_1", "exec_2"]', ["exec_1", "exec_2"]),
        ('{"exec_1": ["t", 0, 7], "exec_2": ["t", 1, 3]}', ["exec_1", "exec_2"]),
        ('{"exec_1": "7"}', None),
        ("read_models", ["read_models"]),
        ("", None),
        ("[1, 2]", None),
        ("[not json", None),
    ],
)
def test_notification_payloads_name_their_keys(payload: str, keys: list[str] | None) -> None:
    assert _keys(payload) == keys


async def test_subscribers_hear_their_keys_and_everyone_hears_an_unreadable_payload() -> None:
    listener = StateChangeListener("postgresql://unused", ("changes", "offsets"))
    mine = listener.subscribe("changes", "exec_1")
    other = listener.subscribe("changes", "exec_2")
    offsets = listener.subscribe("offsets", None)

    listener._on_notify(None, 0, "changes", '["exec_1"]')
    assert [await s.wait(0) for s in (mine, other, offsets)] == [True, False, False]
    listener._on_notify(None, 0, "changes", "[garbage")
    assert [await s.wait(0) for s in (mine, other, offsets)] == [True, True, False]
    listener._on_notify(None, 0, "offsets", "read_models")
    assert [await s.wait(0) for s in (mine, other, offsets)] == [False, False, True]

    waiting = asyncio.create_task(mine.wait(10))
    await asyncio.sleep(0)
    await listener.stop()  # ends every subscription: a waiting stream returns and sees it
    await asyncio.wait_for(waiting, 1)
    assert mine.closed and other.closed and offsets.closed


def test_settings_keep_secrets_out_of_reprs() -> None:
    settings = ApiSettings(database_url="postgresql://u:pw-secret@h/db", api_token="tok-secret")
    text = f"{settings!r} {settings} {settings.model_dump()}"
    assert "pw-secret" not in text and "tok-secret" not in text


def test_settings_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://env/db")
    monkeypatch.setenv("ORCHESTRATOR_API_TOKEN", "from-env")
    monkeypatch.setenv("ORCHESTRATOR_MAX_WAIT_MS", "1000")
    settings = ApiSettings()
    assert settings.database_url.get_secret_value() == "postgresql://env/db"
    assert settings.api_token is not None and settings.api_token.get_secret_value() == "from-env"
    assert settings.max_wait_ms == 1000
    assert settings.wait_default_ms == 1000  # the default wait never exceeds the maximum


def test_inconsistent_settings_fail_naming_the_keys() -> None:
    with pytest.raises(ValidationError, match="default_wait_ms"):
        ApiSettings(database_url="postgresql://x/y", default_wait_ms=10, max_wait_ms=5)
    with pytest.raises(ValidationError, match="max_wait_mss"):
        ApiSettings(database_url="postgresql://x/y", max_wait_mss=5)  # type: ignore[call-arg]


def test_the_openapi_document_shows_what_the_app_enforces() -> None:
    open_app = create_app(
        ApiSettings(database_url="postgresql://x/y", max_wait_ms=1234, default_wait_ms=1000)
    )
    guarded = create_app(ApiSettings(database_url="postgresql://x/y", api_token="t"))
    spec, guarded_spec = open_app.openapi(), guarded.openapi()

    params = {
        p["name"]: p for p in spec["paths"]["/executions/{execution_id}"]["get"]["parameters"]
    }
    wait = params["wait_ms"]["schema"]["anyOf"][0]
    assert (wait["minimum"], wait["maximum"]) == (0, 1234)
    assert "security" not in spec["paths"]["/executions"]["get"]
    assert guarded_spec["paths"]["/executions"]["get"]["security"] == [{"HTTPBearer": []}]
    assert "security" not in guarded_spec["paths"]["/health"]["get"]
    assert set(spec["paths"]) == {
        "/executions",
        "/executions/{execution_id}",
        "/executions/{execution_id}/tasks",
        "/executions/{execution_id}/checkpoints",
        "/executions/{execution_id}/events",
        "/executions/{execution_id}/stream",
        "/executions/{execution_id}/timeline",
        "/executions/{execution_id}/timeline.json",
        "/executions/{execution_id}/state",
        "/namespaces/{namespace}/variables",
        "/health",
        "/metrics",
    }
