"""The options many commands share, declared once: the same flag, variable and check.

A command names its own help where the option means something particular there.
``need`` turns a missing required value into the one ``error:`` line (exit 2).
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console

from orchestrator.config import ConfigError, Settings, load_config_file

T = TypeVar("T")

PIPELINE_TOPIC: Any = typer.Option(
    None, "--pipeline-topic", help="Override the pipeline events topic."
)
SHARED_TOPIC: Any = typer.Option(
    None, "--shared-topic", help="Override the shared-state events topic."
)


def _from_env(flag: str, env: str, help: str) -> Any:
    return typer.Option(None, flag, envvar=env, show_default=False, help=help)


def database_url(help: str = "PostgreSQL DSN of the read models.") -> Any:
    """``--database-url`` (``DATABASE_URL``)."""
    return _from_env("--database-url", "DATABASE_URL", help)


def bootstrap_servers(help: str = "Kafka bootstrap servers.") -> Any:
    """``--bootstrap-servers`` (``KAFKA_BOOTSTRAP_SERVERS``)."""
    return _from_env("--bootstrap-servers", "KAFKA_BOOTSTRAP_SERVERS", help)


def s3_endpoint_url(help: str = "Endpoint of an S3-compatible store.") -> Any:
    """``--s3-endpoint-url`` (``S3_ENDPOINT_URL``)."""
    return _from_env("--s3-endpoint-url", "S3_ENDPOINT_URL", help)


def config_file(help: str = "YAML with the seed's configuration blocks.") -> Any:
    """``--config FILE``."""
    return typer.Option(None, "--config", help=help)


def need(value: str | None, flag: str, env: str) -> str:
    """``value``, or the one line saying how to give it (exit 2)."""
    if not value:
        Console(stderr=True).print(f"[bold red]error:[/] pass {flag} or set {env}")
        raise typer.Exit(2)
    return value


def need_database(value: str | None) -> str:
    """The PostgreSQL DSN, required."""
    return need(value, "--database-url", "DATABASE_URL")


def need_kafka(value: str | None) -> str:
    """The Kafka bootstrap servers, required."""
    return need(value, "--bootstrap-servers", "KAFKA_BOOTSTRAP_SERVERS")


def settings_of(config: Path | None) -> Settings:
    """``--config``'s settings (the defaults without one); a bad file exits 2, one line."""
    if config is None:
        return Settings()
    try:
        return load_config_file(config).settings
    except ConfigError as exc:
        Console(stderr=True).print(f"[bold red]{config}:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's work; failures are rendered once, by ``orchestrator._cli.root.main``."""
    return asyncio.run(coro)
