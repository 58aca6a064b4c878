"""``orchestrator-state config check FILE``: validate a file, print the effective settings."""

from __future__ import annotations

from pathlib import Path

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.syntax import Syntax

from orchestrator._cli.topics import topic_warnings
from orchestrator.config import ConfigError, load_config_file

app = typer.Typer(help="Validate configuration files.", no_args_is_help=True)


@app.command("check")
def check(
    file: Path = typer.Argument(..., help="A YAML file with any of the seed's blocks."),
    effective: bool = typer.Option(True, help="Print the effective settings when valid."),
    bootstrap_servers: str | None = typer.Option(
        None,
        "--bootstrap-servers",
        envvar="KAFKA_BOOTSTRAP_SERVERS",
        show_default=False,
        help="Also compare the existing topics with the file (durability, retention).",
    ),
) -> None:
    """Validate FILE; print every error (exit 1) or the effective settings."""
    out, err = Console(), Console(stderr=True)
    try:
        loaded = load_config_file(file)
    except ConfigError as exc:
        err.print(f"[bold red]{file}: {len(exc.issues)} error(s)[/]")
        for issue in exc.issues:
            err.print(f"  [red]✗[/] {issue}", highlight=False)
        raise typer.Exit(1) from None
    for warning in loaded.warnings:
        err.print(f"  [yellow]![/] {warning}", highlight=False)
    for problem in topic_warnings(loaded.settings, bootstrap_servers):
        err.print(f"  [yellow]![/] {escape(problem)}", highlight=False, soft_wrap=True)
    out.print(f"[green]✓[/] {file} is valid")
    if effective:
        data = loaded.settings.model_dump(mode="json", by_alias=True)
        out.print(Syntax(yaml.safe_dump(data, sort_keys=False), "yaml"))
