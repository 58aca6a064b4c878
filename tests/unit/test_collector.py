"""The processor's garbage-collector schedule never leaves the collector off for good."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from orchestrator.projections._collector import CollectorSchedule, collector_paused


@pytest.fixture(autouse=True)
def _collector_restored() -> Iterator[None]:
    was = gc.isenabled()
    yield
    if was:
        gc.enable()
    else:
        gc.disable()


def _schedule(every_s: float, *, collector_on: bool = True) -> CollectorSchedule:
    """A schedule of ``every_s`` seconds, made while the collector is on (or off)."""
    if collector_on:
        gc.enable()
    else:
        gc.disable()
    return CollectorSchedule(every_s=every_s)


def _run_batch(schedule: CollectorSchedule) -> None:
    """One batch that does nothing but pause (and maybe resume) the collector."""
    with schedule.batch():
        pass


def test_a_batch_pauses_the_collector_and_the_interval_resumes_it() -> None:
    schedule = _schedule(0.0)
    with schedule.batch():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_between_intervals_the_pause_spans_batches_until_resume() -> None:
    schedule = _schedule(3600.0)
    _run_batch(schedule)
    assert not gc.isenabled()  # not yet: at most once an interval
    _run_batch(schedule)
    assert not gc.isenabled()
    schedule.resume()  # what the loop does when it stops or fails
    assert gc.isenabled()


def test_a_collector_disabled_by_someone_else_stays_disabled() -> None:
    schedule = _schedule(0.0, collector_on=False)
    _run_batch(schedule)
    schedule.resume()
    assert not gc.isenabled()
    with collector_paused():
        pass
    assert not gc.isenabled()


def test_a_failing_batch_still_resumes_on_schedule() -> None:
    schedule = _schedule(0.0)
    with pytest.raises(RuntimeError), schedule.batch():
        raise RuntimeError("boom")
    assert gc.isenabled()
