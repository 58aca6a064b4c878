"""`orchestrator-state`: the command line.

This module only assembles the app. Each sub-command group is a typer app in its
own module under `orchestrator/_cli/` (`services.py`, `config.py`, ...); add a
group by writing that module and one `add_typer` line below.
"""

from __future__ import annotations

import logging
import sys
from importlib import metadata

import typer
from rich.console import Console
from rich.logging import RichHandler

from orchestrator._cli import api as api_cli
from orchestrator._cli import bench as bench_cli
from orchestrator._cli import config as config_cli
from orchestrator._cli import demo as demo_cli
from orchestrator._cli import dev as dev_cli
from orchestrator._cli import health as health_cli
from orchestrator._cli import history as history_cli
from orchestrator._cli import projections as projections_cli
from orchestrator._cli import services as services_cli
from orchestrator._cli import snapshots as snapshots_cli
from orchestrator._cli import supervise as supervise_cli
from orchestrator.events.errors import OrchestratorStateError

app = typer.Typer(
    name="orchestrator-state",
    help="Event-sourced state management for AI pipelines (Kafka, PostgreSQL, S3).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(services_cli.app, name="services")
app.add_typer(config_cli.app, name="config")
app.command("demo")(demo_cli.demo)
app.command("dev")(dev_cli.dev)
app.command("api")(api_cli.serve)
app.command("project")(projections_cli.project)
app.command("supervise")(supervise_cli.supervise)
app.command("health")(health_cli.health)
app.add_typer(projections_cli.projections_app, name="projections")
app.add_typer(projections_cli.dlq_app, name="dlq")
app.add_typer(bench_cli.app, name="bench")
app.add_typer(snapshots_cli.app, name="snapshots")
app.add_typer(history_cli.app)  # replay, trace, check, bottlenecks, fork


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"orchestrator-state {metadata.version('orchestrator-state')}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at INFO level."),
    version: bool = typer.Option(
        False, "--version", callback=_print_version, is_eager=True, help="Print the version."
    ),
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[RichHandler(console=Console(stderr=True), show_path=False)],
        force=True,
    )


def main() -> None:
    """Console-script entry point; our own errors end as one red line on stderr, exit 1."""
    try:
        app()
    except OrchestratorStateError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False)
        sys.exit(1)
