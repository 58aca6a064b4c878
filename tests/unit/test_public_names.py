"""The facades export what users and upper layers import, and every name resolves."""

from __future__ import annotations

import importlib

import pytest

# The names the seed's examples and the layers above rely on; removing one breaks users.
REQUIRED = {
    "events": {"Envelope", "EventCodec", "EventLog", "Position", "fold", "step", "ExecutionState"},
    "orchestrator.state": {
        "checkpoint",
        "StateManager",
        "DistributedLock",
        "LeaderElection",
        "StateMachine",
        "BatchStateManager",
        "RecoveryError",
        "StateDebugger",
    },
    "orchestrator": {"Orchestrator"},
}


@pytest.mark.parametrize("module_name", sorted(REQUIRED))
def test_facade_exports_resolve(module_name: str) -> None:
    module = importlib.import_module(module_name)
    exported = set(module.__all__)
    assert REQUIRED[module_name] <= exported
    for name in exported:
        assert getattr(module, name) is not None, f"{module_name}.{name} does not resolve"
