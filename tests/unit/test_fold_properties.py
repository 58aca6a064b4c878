"""Property: duplicates, zombie writes and interleaving never change the folded state."""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.events import catalogue as c
from orchestrator.events.envelope import Envelope
from orchestrator.events.fold import Outcome, fold, step
from orchestrator.events.simulate import interleave, simulate_execution


def _dirty(clean: list[Envelope], rng: random.Random) -> list[Envelope]:
    """The clean history as a flaky log delivers it: duplicates and zombie writes added."""
    out: list[Envelope] = []
    epoch_seen = clean[0].epoch
    for i, event in enumerate(clean):
        out.append(event)
        if isinstance(event.payload, c.ExecutionOwnershipTaken):
            epoch_seen = event.payload.epoch
        # A producer retry: the same event again, right away or a little later.
        if rng.random() < 0.2:
            out.insert(rng.randint(len(out) - 1, len(out)), event)
        # A zombie: the previous owner wakes after a takeover and writes what looks
        # like the next event, with its old epoch.
        if epoch_seen > clean[0].epoch and rng.random() < 0.3:
            nxt = clean[min(i + 1, len(clean) - 1)]
            seq = (event.sequence or 0) + 1
            zombie = replace(nxt, epoch=epoch_seen - 1, sequence=seq, event_id=f"zombie-{i}")
            out.append(zombie)
    return out


@settings(max_examples=150, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), executions=st.integers(1, 6))
def test_dirty_interleaved_log_folds_to_the_clean_state(seed: int, executions: int) -> None:
    rng = random.Random(seed)
    clean = {
        f"exec_{n}": simulate_execution(f"exec_{n}", rng, tasks=rng.randint(1, 6))
        for n in range(executions)
    }
    log = list(interleave([_dirty(h, rng) for h in clean.values()], rng))

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
