"""``AppOptions``: which components one ``App`` process runs (a worker runs only the
runtime, another the processors and the API)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.runtime import Pipeline


@dataclass(frozen=True, slots=True, kw_only=True)
class AppOptions:
    """Which components this process runs."""

    run_projector: bool = True
    run_snapshotter: bool = True
    join_recovery: bool = True
    """Heartbeat and claim recovery work (``Orchestrator.start``)."""
    supervise: bool = True
    """Campaign for the recovery supervisor's leadership."""
    api_port: int | None = None
    api_host: str = "127.0.0.1"
    prune_every: float = 3600.0
    pipelines: Sequence[Pipeline] = ()
    discover_pipelines: bool = True
    """Also run pipelines defined in this process but not listed in ``pipelines``."""
    configure_process: bool = True
    """Make this app's runtime, leases and policies the process defaults (and its
    ``monitoring.metrics`` the process's exported metrics)."""
    metrics_address: str | None = None
    """Serve Prometheus ``/metrics`` here (``HOST:PORT``, ``PORT`` on 127.0.0.1, ``0``: any
    free port); ``None``: no metrics server (the API, if any, still has ``/metrics``)."""
