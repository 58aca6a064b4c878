"""``orchestrator-state config check FILE``: validate a file, print the effective settings.

Secrets never reach the output: passwords in URLs and every option or variable whose
name says secret (``*password*``, ``*_token``, ``*_key``, ``secret*``, key rings) are
printed as ``***`` (``orchestrator.config.redaction``), in the human and the JSON form.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import typer
import yaml
from rich.console import Console
from rich.markup import escape
from rich.syntax import Syntax

from orchestrator._cli import _options as opts
from orchestrator._cli._output import JSON_OPTION, emit_json
from orchestrator._cli.topics import topic_warnings
from orchestrator.config import ConfigError, load_config_file, redact

app = typer.Typer(help="Validate configuration files.", no_args_is_help=True)

# The variables that reach servers and keys (beside ORCHESTRATOR_<BLOCK>__<KEY> overrides).
ENVIRONMENT = (
    "KAFKA_BOOTSTRAP_SERVERS",
    "DATABASE_URL",
    "S3_ENDPOINT_URL",
    "S3_BUCKET",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "ORCHESTRATOR_API_TOKEN",
    "ORCHESTRATOR_SNAPSHOT_KEYS",
    "ORCHESTRATOR_SNAPSHOT_ACTIVE_KEY",
)


def _environment() -> dict[str, Any]:
    env = {name: os.environ[name] for name in ENVIRONMENT if os.environ.get(name)}
    return dict(redact(env))


@app.command("check")
def check(
    file: Path = typer.Argument(..., help="A YAML file with any of the seed's blocks."),
    effective: bool = typer.Option(True, help="Print the effective settings when valid."),
    bootstrap_servers: str | None = opts.bootstrap_servers(
        "Also compare the existing topics with the file (durability, retention)."
    ),
    as_json: bool = JSON_OPTION,
) -> None:
    """Validate FILE; print every error (exit 1) or the effective settings (secrets ***)."""
    out, err = Console(), Console(stderr=True)
    try:
        loaded = load_config_file(file)
    except ConfigError as exc:
        if not as_json:
            raise  # one line per issue, by orchestrator._cli.root.main
        emit_json({"file": str(file), "valid": False, "errors": [str(i) for i in exc.issues]})
        raise typer.Exit(1) from None
    settings = redact(loaded.settings.model_dump(mode="json", by_alias=True))
    environment = _environment()
    topic_problems = topic_warnings(loaded.settings, bootstrap_servers)
    if as_json:
        emit_json(
            {
                "file": str(file),
                "valid": True,
                "warnings": [str(w) for w in loaded.warnings],
                "topics": topic_problems,
                "settings": settings,
                "environment": environment,
            }
        )
        return
    for warning in loaded.warnings:
        err.print(f"  [yellow]![/] {escape(str(warning))}", highlight=False)
    for problem in topic_problems:
        err.print(f"  [yellow]![/] {escape(problem)}", highlight=False, soft_wrap=True)
    out.print(f"[green]✓[/] {escape(str(file))} is valid", highlight=False)
    if effective:
        document = {**settings, **({"environment": environment} if environment else {})}
        out.print(Syntax(yaml.safe_dump(document, sort_keys=False), "yaml"))
