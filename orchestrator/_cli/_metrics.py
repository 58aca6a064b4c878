"""``--metrics-address`` of the long-running commands, and starting their metrics server.

Each command has its own default port on 127.0.0.1, so a processor, a snapshotter and a
supervisor on one host do not collide: ``dev`` 9470, ``project`` 9471, ``snapshots run``
9472, ``supervise`` 9473 (the API serves ``/metrics`` on its own port). ``HOST:PORT``
binds elsewhere (``0.0.0.0:9471`` in a container), ``PORT`` keeps loopback, ``0`` takes
any free port (logged), ``off`` serves none.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Coroutine, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import typer

from orchestrator.config import load_config, load_config_file
from orchestrator.events import MetricsAddress, MetricsServer, select, serve_or_warn

METRICS_ADDRESS_ENV = "ORCHESTRATOR_METRICS_ADDRESS"
DEFAULT_PORTS = {"dev": 9470, "project": 9471, "snapshots": 9472, "supervise": 9473}

log = logging.getLogger("orchestrator.metrics")
T = TypeVar("T")


def metrics_option(command: str) -> Any:
    """The ``--metrics-address`` option of ``command`` (env ORCHESTRATOR_METRICS_ADDRESS)."""
    return typer.Option(
        f"127.0.0.1:{DEFAULT_PORTS[command]}",
        "--metrics-address",
        envvar=METRICS_ADDRESS_ENV,
        callback=_validated,
        help="Serve Prometheus /metrics at HOST:PORT (PORT: on 127.0.0.1; 0: any; off: none).",
    )


def _validated(text: str) -> str:
    checked_address(text)
    return text


def checked_address(text: str) -> str | None:
    """The address as given, or None for ``off``; a malformed one is a usage error."""
    try:
        parsed = MetricsAddress.parse(text)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--metrics-address") from None
    return None if parsed is None else text


def start_metrics(address: str, seed_names: Iterable[str]) -> MetricsServer | None:
    """Export ``monitoring.metrics`` (``seed_names``) at ``address``; see serve_or_warn."""
    select(seed_names)
    return serve_or_warn(checked_address(address), log)


def configured_metrics(config: Path | None) -> list[str]:
    """``monitoring.metrics`` of ``--config`` (or of the ``ORCHESTRATOR_*`` overrides)."""
    loaded = load_config_file(config) if config else load_config("{}", "<environment>")
    return list(loaded.settings.monitoring.metrics)


@contextlib.contextmanager
def metrics_served(address: str, config: Path | None) -> Iterator[MetricsServer | None]:
    """Serve ``/metrics`` (what ``--config`` selects) while inside."""
    server = start_metrics(address, configured_metrics(config))
    try:
        yield server
    finally:
        if server is not None:
            server.close()


async def with_metrics(work: Coroutine[Any, Any, T], address: str, config: Path | None) -> T:
    """Await ``work`` while serving ``/metrics`` (see :func:`metrics_served`)."""
    with metrics_served(address, config):
        return await work
