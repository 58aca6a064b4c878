"""The outage helper: bounded backoff, one log line when an outage starts and one when
it ends, whatever the number of attempts."""

from __future__ import annotations

import asyncio
import logging

import pytest

from orchestrator.events.outage import Outage, RepeatFilter, ride_out


async def test_ride_out_logs_once_per_outage_and_returns_the_result(
    caplog: pytest.LogCaptureFixture,
) -> None:
    logger = logging.getLogger("test.outage")
    outage = Outage("the database", logger, initial_delay=0.001, max_delay=0.005)
    failures = iter([ConnectionError("down")] * 25)

    async def call() -> str:
        error = next(failures, None)
        if error is not None:
            raise error
        return "done"

    with caplog.at_level(logging.WARNING, logger="test.outage"):
        assert await ride_out(call, outage=outage, transient=lambda e: True) == "done"
    lines = [r.getMessage() for r in caplog.records if r.name == "test.outage"]
    assert len(lines) == 2
    assert "the database unavailable" in lines[0]
    assert "available again after" in lines[1] and "25 failed attempt(s)" in lines[1]
    assert not outage.ongoing


async def test_ride_out_raises_what_is_not_an_outage_at_once() -> None:
    outage = Outage("x", logging.getLogger("test.outage"))

    async def call() -> None:
        raise ValueError("a bug")

    with pytest.raises(ValueError, match="a bug"):
        await ride_out(call, outage=outage, transient=lambda e: isinstance(e, OSError))
    assert outage.outages == 0


async def test_ride_out_gives_up_when_asked_to_stop() -> None:
    outage = Outage("x", logging.getLogger("test.outage"), initial_delay=5, max_delay=5)
    stop = asyncio.Event()
    stop.set()

    async def call() -> None:
        raise ConnectionError("down")

    with pytest.raises(ConnectionError):
        await ride_out(call, outage=outage, transient=lambda e: True, stop=stop)


def test_backoff_is_bounded() -> None:
    outage = Outage("x", logging.getLogger("test.outage"), initial_delay=0.1, max_delay=2.0)
    delays = [outage.failed(OSError()) for _ in range(100)]
    assert all(0.1 <= d <= 2.0 for d in delays)


def test_repeat_filter_lets_the_first_of_a_run_through() -> None:
    f = RepeatFilter(quiet=60)

    def record(msg: str) -> logging.LogRecord:
        return logging.LogRecord("aiokafka", logging.ERROR, "x", 1, msg, None, None)

    assert f.filter(record("Unable connect to node %s"))
    assert not f.filter(record("Unable connect to node %s"))
    assert f.filter(record("another complaint"))
