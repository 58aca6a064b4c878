"""A failed run's append in flight: its error is logged, never dropped silently, and
the completions it held are handed back (they are not known to be in the log)."""

from __future__ import annotations

import asyncio
import logging
from types import SimpleNamespace
from typing import Any, cast

import pytest

from orchestrator.commands import CompleteTask
from orchestrator.events import Position
from orchestrator.runtime._inflight import InFlight


def _inflight() -> InFlight:
    return InFlight(cast(Any, SimpleNamespace(execution_id="exec-1")), cast(Any, None))


async def test_abandon_logs_the_append_error_it_does_not_raise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def refused() -> list[Position]:
        raise ConnectionError("broker went away")

    inflight = _inflight()
    held = (CompleteTask(task_id="b", outputs="b"),)
    inflight.task, inflight._completions = asyncio.ensure_future(refused()), held
    with caplog.at_level(logging.WARNING):
        lost = await inflight.abandon()  # the run's own error is the one that propagates
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 1
    assert "exec-1" in lines[0] and "ConnectionError: broker went away" in lines[0]
    assert inflight.task is None and inflight.completed == frozenset()
    assert lost == held  # not known to be in the log: the run decides them again


async def test_abandon_of_an_acknowledged_append_hands_nothing_back() -> None:
    recorded: list[list[Position]] = []
    inflight = InFlight(
        cast(Any, SimpleNamespace(execution_id="exec-1")),
        cast(Any, SimpleNamespace(record=recorded.append)),
    )

    async def acknowledged() -> list[Position]:
        return [Position("t", 0, 7)]

    inflight.task = asyncio.ensure_future(acknowledged())
    inflight._completions = (CompleteTask(task_id="b", outputs="b"),)
    assert await inflight.abandon() is None
    assert recorded == [[Position("t", 0, 7)]]
    assert inflight.task is None


async def test_a_failed_append_fails_every_later_settle_until_abandoned(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Whoever settles the failed append first, nothing after it is decided over the
    state it led to: every later settle raises its error; abandon hands back what it
    held, and logs nothing when that error is the run's own."""
    error = ConnectionError("broker went away")

    async def refused() -> list[Position]:
        raise error

    inflight = _inflight()
    held = (CompleteTask(task_id="b", outputs="b"),)
    inflight.task, inflight._completions = asyncio.ensure_future(refused()), held
    for _ in range(2):  # a task's FailTask settles it first; then the task loop's submit
        with pytest.raises(ConnectionError):
            await inflight.settle()
    with pytest.raises(ConnectionError):
        await inflight.settle_if_done()
    with caplog.at_level(logging.WARNING):
        assert await inflight.abandon(error) == held
    assert caplog.records == []
    await inflight.settle()  # the run re-took the state: its next command may be decided
    assert await inflight.abandon() is None
