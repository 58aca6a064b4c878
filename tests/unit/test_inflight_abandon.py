"""A failed run's append in flight: its error is logged, never dropped silently."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any, cast

import pytest

from orchestrator.events import Position
from orchestrator.runtime._inflight import InFlight


async def test_abandon_logs_the_append_error_it_does_not_raise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def refused() -> list[Position]:
        raise ConnectionError("broker went away")

    inflight = InFlight(cast(Any, SimpleNamespace(execution_id="exec-1")), cast(Any, None))
    inflight.task = asyncio.ensure_future(refused())
    with caplog.at_level(logging.WARNING):
        await inflight.abandon()  # the run's own error is the one that propagates
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1
    assert "exec-1" in lines[0] and "ConnectionError: broker went away" in lines[0]
    assert inflight.task is None
