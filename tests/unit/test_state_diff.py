"""The replay tool's per-event diff names exactly what the event changed."""

from __future__ import annotations

import random

from orchestrator.debug.diff import diff
from orchestrator.events.fold import fold, step
from orchestrator.events.simulate import simulate_execution


def test_diff_of_a_task_completion_names_its_fields() -> None:
    history = simulate_execution("exec_1", random.Random(3), tasks=3, takeovers=False)
    completed_at = next(i for i, e in enumerate(history) if e.event_type == "TaskCompleted")
    before = fold(history[:completed_at])
    after = step(before, history[completed_at]).state
    paths = {c.path for c in diff(before, after)}
    assert "tasks.task_0.status" in paths
    assert "tasks.task_0.outputs" in paths
    assert "last_sequence" in paths
    assert "pipeline_id" not in paths


def test_diff_of_equal_states_is_empty_and_creation_diffs_from_nothing() -> None:
    history = simulate_execution("exec_1", random.Random(5), tasks=2)
    state = fold(history)
    assert list(diff(state, state)) == []
    first = fold(history[:1])
    [root] = list(diff(None, first))
    assert root.old is None and root.new == first
