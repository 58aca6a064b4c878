"""``orchestrator-state api``: serve the query API (FastAPI) with uvicorn.

Binds to 127.0.0.1 unless told otherwise: the read models hold every pipeline's
context and outputs, so exposing them is a decision, not a default. The database
comes from ``--database-url`` or ``DATABASE_URL``; the token, the wait limits and
the rest of ``ApiSettings`` from ``ORCHESTRATOR_*`` variables.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import signal
from collections.abc import Iterator
from pathlib import Path

import typer
import uvicorn
from pydantic import ValidationError
from rich.console import Console

from orchestrator._cli import _options as opts
from orchestrator._cli._metrics import configured_metrics
from orchestrator._cli.health import HEALTH_FILE, Liveness
from orchestrator._cli.topics import configured_security, configured_topics
from orchestrator.app import ensure_configured_topics
from orchestrator.debug import install_snapshot_states
from orchestrator.events import select as select_metrics
from orchestrator.projections import ApiSettings, create_app

_GRACEFUL_SHUTDOWN_S = 5  # SSE streams never end by themselves: cut them after this


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (0.0.0.0: all)."),
    port: int = typer.Option(8080, "--port", min=0, max=65535, help="TCP port (0: any free)."),
    database_url: str | None = opts.database_url(),
    migrate: bool = typer.Option(
        False, "--migrate", help="Apply the read-model migrations before serving."
    ),
    bootstrap_servers: str | None = opts.bootstrap_servers(
        "Verify (or create) the configured topics first, as every process does."
    ),
    config: Path | None = typer.Option(
        None, "--config", "-c", help="A YAML file with the seed's blocks (names the topics)."
    ),
    health_file: Path | None = HEALTH_FILE,
) -> None:
    """Serve the query API: executions, tasks, checkpoints, events, shared variables."""
    err = Console(stderr=True)
    overrides: dict[str, object] = {"apply_migrations": migrate}
    if database_url:
        overrides["database_url"] = database_url
    try:
        settings = ApiSettings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        for error in exc.errors():
            key = ".".join(str(part) for part in error["loc"])
            hint = " (pass --database-url or set DATABASE_URL)" if key == "database_url" else ""
            err.print(f"[bold red]error:[/] {key}: {error['msg']}{hint}", highlight=False)
        raise typer.Exit(2) from None
    if settings.api_token is None and not _is_loopback(host):
        err.print(
            f"[yellow]warning:[/] serving on {host} without ORCHESTRATOR_API_TOKEN: "
            "anyone who reaches the port reads every pipeline's state",
            highlight=False,
        )
    if bootstrap_servers:
        # Position tokens name topics: the same topics every process creates or verifies.
        asyncio.run(
            ensure_configured_topics(
                bootstrap_servers,
                configured_topics(config),
                consumer_only=True,
                security=configured_security(config),
            )
        )
    select_metrics(configured_metrics(config))  # /metrics shows what monitoring.metrics names
    app = create_app(settings)
    # The timeline's "state at event" uses snapshots + archive (projections may not
    # import snapshots, so the top layer installs it).
    install_snapshot_states(app, settings.tables)
    server_config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_config=None,  # keep the CLI's logging setup
        timeout_graceful_shutdown=_GRACEFUL_SHUTDOWN_S,
    )
    server = _Server(server_config)
    access = "bearer token required" if settings.api_token else "docs at /docs"
    err.print(f"query API on http://{host}:{port} ({access})", highlight=False)
    asyncio.run(_serve(server, health_file))  # SIGTERM/SIGINT: graceful stop, exit 0
    if not server.started:
        err.print("[bold red]error:[/] the API did not start (see the log above)")
        raise typer.Exit(3)


class _Server(uvicorn.Server):
    """uvicorn whose SIGTERM/SIGINT stop it gracefully and let the command exit 0 (uvicorn
    itself re-raises the signal afterwards, which a container reports as killed)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)


async def _serve(server: uvicorn.Server, health_file: Path | None) -> None:
    """Serve; the liveness file is touched from the server's loop once it has started."""
    async with Liveness(health_file, lambda: server.started and not server.should_exit):
        await server.serve()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
