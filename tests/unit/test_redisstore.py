"""The Redis read model's pure parts: an execution's hash fields map back to exactly the
folded state (the PostgreSQL rows' lossless mapping, JSON-encoded), keys keep one
execution in one cluster slot, and the TTL follows the execution's status."""

from __future__ import annotations

import random

import pytest

from orchestrator.events.fold import fold
from orchestrator.events.simulate import simulate_execution
from orchestrator.projections._batch import ExecutionEntry
from orchestrator.projections.redisstore import (
    RedisKeys,
    execution_fields,
    execution_from_hash,
    ttl_for,
)


def _as_hash(fields: list[str], applied: int) -> dict[bytes, bytes]:
    out = {b"applied": str(applied).encode()}
    for name, value in zip(fields[::2], fields[1::2], strict=True):
        out[name.encode()] = value.encode()
    return out


@pytest.mark.parametrize("seed", range(20))
def test_hash_fields_map_back_to_the_folded_state(seed: int) -> None:
    events = simulate_execution(f"exec-{seed}", random.Random(seed), tasks=5)
    state = fold(events)
    assert state is not None
    entry = ExecutionEntry(state, len(events), ("t", 2), ("t", 2, 99))
    stored = execution_from_hash(_as_hash(execution_fields(entry, None), 99))
    assert stored is not None
    assert stored.entry.state == state
    assert (stored.entry.event_count, stored.entry.tp, stored.applied) == (
        len(events),
        ("t", 2),
        99,
    )
    assert stored.entry.last_position == ("t", 2, 99)


def test_a_partial_write_carries_only_the_changed_tasks() -> None:
    events = simulate_execution("exec-x", random.Random(1), tasks=4)
    state = fold(events)
    assert state is not None
    first = next(iter(state.tasks))
    fields = execution_fields(ExecutionEntry(state, 1, ("t", 0)), {first: state.updated_at})
    assert [f for f in fields[::2] if f.startswith("task:")] == [f"task:{first}"]


def test_keys_of_one_execution_share_a_hash_tag() -> None:
    keys = RedisKeys("orchestrator:")
    assert keys.execution("e-1") == "orchestrator:{e-1}:execution"
    with pytest.raises(ValueError, match="hash tags"):
        RedisKeys("bad{prefix}:")


def test_terminal_states_take_the_completed_ttl() -> None:
    events = simulate_execution("exec-y", random.Random(3), tasks=2)
    state = fold(events)
    assert state is not None
    expected = 20 if state.status in ("completed", "failed", "cancelled") else 10
    assert ttl_for(state, 10, 20) == expected
