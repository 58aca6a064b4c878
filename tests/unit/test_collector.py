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


def test_a_batch_pauses_the_collector_and_the_interval_resumes_it() -> None:
    gc.enable()
    schedule = CollectorSchedule(every_s=0.0)
    with schedule.batch():
        assert not gc.isenabled()
    assert gc.isenabled()


def test_between_intervals_the_pause_spans_batches_until_resume() -> None:
    gc.enable()
    schedule = CollectorSchedule(every_s=3600.0)
    with schedule.batch():
        pass
    assert not gc.isenabled()  # not yet: at most once an interval
    with schedule.batch():
        pass
    assert not gc.isenabled()
    schedule.resume()  # what the loop does when it stops or fails
    assert gc.isenabled()


def test_a_collector_disabled_by_someone_else_stays_disabled() -> None:
    gc.disable()
    schedule = CollectorSchedule(every_s=0.0)
    with schedule.batch():
        pass
    schedule.resume()
    assert not gc.isenabled()
    with collector_paused():
        pass
    assert not gc.isenabled()


def test_a_failing_batch_still_resumes_on_schedule() -> None:
    gc.enable()
    schedule = CollectorSchedule(every_s=0.0)
    with pytest.raises(RuntimeError), schedule.batch():
        raise RuntimeError("boom")
    assert gc.isenabled()
