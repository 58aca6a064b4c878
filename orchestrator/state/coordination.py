"""The seed's ``DistributedLock`` and ``LeaderElection``: built with a name and a ttl only.

Why: the seed's examples build ``DistributedLock(name=..., ttl=...)`` and
``LeaderElection(...)`` with no connection. ``commands`` holds no process-wide store;
these two ask the runtime the process (or the current context) uses, when they first
need a store: its leases (PostgreSQL's, etcd's or the memory backend's), so a lock
uses the coordination backend the configuration chose. A ``pool`` or ``store`` given
explicitly wins, as in ``commands``.
"""

from __future__ import annotations

from typing import Any

from orchestrator.commands import CoordinationStore
from orchestrator.commands import DistributedLock as _Lock
from orchestrator.commands import LeaderElection as _Election
from orchestrator.state.errors import NotConfigured
from orchestrator.state.services import current_runtime


def runtime_leases() -> CoordinationStore | None:
    """The leases of the runtime in use (``None``: no runtime, ``LockNotConfigured``)."""
    try:
        return current_runtime().leases
    except NotConfigured:
        return None


class DistributedLock(_Lock):
    """``commands.DistributedLock`` whose default store is the runtime's leases."""

    def __init__(self, name: str, ttl: float, retry_interval: float = 1.0, **options: Any) -> None:
        options.setdefault("default_store", runtime_leases)
        super().__init__(name, ttl, retry_interval, **options)


class LeaderElection(_Election):
    """``commands.LeaderElection`` whose default store is the runtime's leases."""

    def __init__(self, name: str, node_id: str, ttl: float, **options: Any) -> None:
        options.setdefault("default_store", runtime_leases)
        super().__init__(name, node_id, ttl, **options)
