"""A small HTTP server for ``/metrics`` of a process that serves nothing else over HTTP.

The projection processor, the snapshotter, the supervisor and workers run one (the
API serves ``/metrics`` on its own app). It is prometheus-client's own server, in a
daemon thread, showing :func:`orchestrator.events.metrics.selected`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from prometheus_client import start_http_server

from orchestrator.events.metrics import selected


@dataclass(frozen=True, slots=True)
class MetricsAddress:
    """Where a process serves ``/metrics``: ``host:port`` (port 0: any free one)."""

    host: str
    port: int

    @classmethod
    def parse(cls, text: str, *, default_host: str = "127.0.0.1") -> MetricsAddress | None:
        """``PORT``, ``HOST:PORT`` or ``[V6]:PORT``; ``off`` (or empty) is ``None``."""
        text = text.strip()
        if text.lower() in ("", "off", "none", "false"):
            return None
        host, sep, port = text.rpartition(":")
        if not sep:
            host, port = default_host, text
        host = host.strip("[]") or default_host
        if not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"metrics address {text!r}: expected PORT, HOST:PORT or 'off'")
        return cls(host, int(port))


class MetricsServer:
    """``/metrics`` of this process on a small HTTP server (a daemon thread)."""

    def __init__(self, address: MetricsAddress) -> None:
        self.address = address
        self._server: Any = None

    def start(self) -> MetricsServer:
        self._server, _ = start_http_server(
            self.address.port,
            addr=self.address.host,
            registry=selected(),
        )
        return self

    @property
    def port(self) -> int:
        port: int = self._server.server_address[1]
        return port

    @property
    def url(self) -> str:
        host = self.address.host
        host = f"[{host}]" if ":" in host else host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()


def serve_or_warn(address: str | None, log: logging.Logger) -> MetricsServer | None:
    """:func:`serve`, for a process whose real work matters more: an address in use (or
    one that cannot be bound) is one warning line, and the process runs without
    ``/metrics``. ``None`` or ``off``: no server."""
    parsed = None if address is None else MetricsAddress.parse(address)
    if parsed is None:
        return None
    try:
        server = MetricsServer(parsed).start()
    except OSError as exc:
        log.warning("metrics: cannot listen on %s:%s (%s); running without /metrics",
                    parsed.host, parsed.port, exc.strerror or exc)  # fmt: skip
        return None
    log.info("metrics: serving %s", server.url)
    return server


def serve(address: MetricsAddress | str) -> MetricsServer:
    """Start serving ``/metrics`` at ``address`` (a string is parsed; see MetricsAddress)."""
    if isinstance(address, str):
        parsed = MetricsAddress.parse(address)
        if parsed is None:
            raise ValueError("metrics are off: nothing to serve")
        address = parsed
    return MetricsServer(address).start()
