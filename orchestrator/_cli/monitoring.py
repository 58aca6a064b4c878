"""``orchestrator-state monitoring export``: the dashboards ``monitoring.dashboards`` names,
the alert rules and a sample scrape config, written to a folder."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from orchestrator._cli import _options as opts
from orchestrator.config import load_config, load_config_file
from orchestrator.monitoring import export

app = typer.Typer(help="Dashboards, alert rules and scrape config.", no_args_is_help=True)


@app.command("export")
def export_command(
    out: Path = typer.Option(Path("monitoring"), "--out", help="Folder to write into."),
    config: Path | None = opts.config_file(
        "YAML with the seed's monitoring block (default: all four)."
    ),
) -> None:
    """Write dashboards/<name>.json (Grafana), alerts.yml and prometheus.yml."""
    loaded = load_config_file(config) if config else load_config("{}", "<environment>")
    for path in export(out, loaded.settings.monitoring.dashboards):
        Console(soft_wrap=True).print(str(path), highlight=False, markup=False)
