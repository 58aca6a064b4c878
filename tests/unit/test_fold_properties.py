"""Property: duplicates, zombie writes and interleaving never change the folded state
(the dirty log is ``tests.histories.flaky_log``: producer retries and zombie writes)."""

from __future__ import annotations

import random
from collections import defaultdict

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.events.envelope import Envelope
from orchestrator.events.fold import Outcome, fold, step
from orchestrator.events.simulate import interleave, simulate_execution
from tests.histories import flaky_log


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), executions=st.integers(1, 6))
def test_dirty_interleaved_log_folds_to_the_clean_state(seed: int, executions: int) -> None:
    rng = random.Random(seed)
    clean = {
        f"exec_{n}": simulate_execution(f"exec_{n}", rng, tasks=rng.randint(1, 6))
        for n in range(executions)
    }
    dirty = [flaky_log(h, rng, retries=0.2, zombies=0.3) for h in clean.values()]
    log = list(interleave(dirty, rng))

    by_execution: dict[str | None, list[Envelope]] = defaultdict(list)
    for event in log:
        by_execution[event.execution_id].append(event)

    for execution_id, history in clean.items():
        expected = fold(history)
        assert expected is not None
        assert fold(by_execution[execution_id]) == expected
        # The clean history itself is applied in full: every event counts once.
        state = None
        for event in history:
            result = step(state, event)
            assert result.outcome is Outcome.APPLIED, result.reason
            state = result.state


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_last_sequence_counts_the_sequenced_events(seed: int) -> None:
    history = simulate_execution("exec_a", random.Random(seed))
    state = fold(history)
    assert state is not None
    sequenced = [e for e in history if e.sequence is not None]
    assert state.last_sequence == len(sequenced) == sequenced[-1].sequence
    assert state.epoch == max(e.epoch for e in history)
