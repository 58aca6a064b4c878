"""``orchestrator-state topics ensure|describe``: the topics the configuration implies.

Both read the same layout (``orchestrator.app.topics.topics_from``: the two event
topics and their ``.dlq`` companions) from ``--config`` (or the defaults) and the
broker from ``--bootstrap-servers`` / ``KAFKA_BOOTSTRAP_SERVERS``. ``ensure`` creates
what is missing and verifies the rest: a partition-count mismatch exits 1 before
anything is created; weaker durability or another retention is printed with the
command that fixes it (exit 0, or 1 with ``--strict``).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from orchestrator._cli import _options as opts
from orchestrator._cli._connect import cli_kafka_security
from orchestrator._cli._folded import folded, option
from orchestrator.app import (
    describe_configured_topics,
    ensure_configured_topics,
    topics_from,
    weaker_than_default,
)
from orchestrator.config import ConfigError, Settings, load_config_file
from orchestrator.events import (
    KafkaSecurity,
    KafkaSecurityError,
    OrchestratorStateError,
    TopicReport,
    TopicsConfig,
)

app = typer.Typer(help="Create or verify the Kafka topics (events and DLQs).", no_args_is_help=True)


@dataclass(frozen=True)
class _Which:
    """The broker and the topics a ``topics`` command acts on (its shared flags)."""

    bootstrap_servers: str | None
    config: Path | None
    pipeline_topic: str | None
    shared_topic: str | None


_with_which = folded(
    "which",
    _Which,
    option("bootstrap_servers", str | None, opts.bootstrap_servers()),
    option(
        "config",
        Path | None,
        opts.config_file("YAML with the seed's blocks (topics, replication)."),
    ),
    option("pipeline_topic", str | None, opts.PIPELINE_TOPIC),
    option("shared_topic", str | None, opts.SHARED_TOPIC),
)


def configured_topics(
    config: Path | None, pipeline_topic: str | None = None, shared_topic: str | None = None
) -> TopicsConfig:
    """The topics ``--config`` (or the defaults) implies; a bad file exits 2."""
    settings = opts.settings_of(config)
    return topics_from(settings, pipeline_topic=pipeline_topic, shared_topic=shared_topic)


def configured_security(config: Path | None) -> KafkaSecurity:
    """How to log in to Kafka: ``--config``'s ``event_store.kafka_security`` merged with
    the ``KAFKA_*`` variables; a bad file or combination exits 2 with one line."""
    try:
        settings = load_config_file(config).settings if config is not None else None
        return cli_kafka_security(settings)
    except (ConfigError, KafkaSecurityError) as exc:
        where = config if config is not None else "error"
        Console(stderr=True).print(f"[bold red]{where}:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None


def topic_warnings(settings: Settings, bootstrap: str | None) -> list[str]:
    """What ``config check`` reports about durability: settings weaker than the defaults,
    and (given a broker) existing topics that differ from the file, each with its fix."""
    found = weaker_than_default(settings)
    if bootstrap:
        try:
            security = cli_kafka_security(settings)
            report = asyncio.run(
                describe_configured_topics(
                    bootstrap, topics_from(settings), deadline_s=10, security=security
                )
            )
        except OrchestratorStateError as exc:
            return [*found, f"topics not compared: {exc}"]
        found.extend(str(p) for p in report.problems)
    return found


def _report(
    act: Callable[..., Coroutine[Any, Any, TopicReport]], which: _Which, as_json: bool
) -> TopicReport:
    """``act`` (ensure or describe) on the configured topics, printed; a failure exits 1."""
    configured = configured_topics(which.config, which.pipeline_topic, which.shared_topic)
    security = configured_security(which.config)
    bootstrap = opts.need_kafka(which.bootstrap_servers)
    try:
        report = asyncio.run(act(bootstrap, configured, security=security))
    except OrchestratorStateError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(report_json(report), indent=2))
    else:
        _print(report)
    return report


_SETTINGS = ("partitions", "replication_factor", "min_insync_replicas", "retention_ms")
_PROBLEM = ("topic", "setting", "expected", "actual", "blocking", "fix")


def report_json(report: TopicReport) -> dict[str, Any]:
    """The report as ``topics describe --json`` prints it."""
    return {
        "bootstrap_servers": report.bootstrap_servers,
        "brokers": report.brokers,
        "topics": [
            {
                "name": t.name,
                "exists": t.exists,
                "created": t.name in report.created,
                "expected": {k: getattr(t.expected, k) for k in _SETTINGS},
                "actual": {k: getattr(t, k) for k in _SETTINGS} if t.exists else None,
            }
            for t in report.topics
        ],
        "problems": [{k: getattr(p, k) for k in _PROBLEM} for p in report.problems],
    }


def _print(report: TopicReport) -> None:
    table = Table(title=f"{report.brokers} broker(s) at {report.bootstrap_servers}")
    for column in ("topic", "state", "partitions", "replication", "min.insync", "retention.ms"):
        table.add_column(column)
    for t in report.topics:
        e = t.expected
        state = "created" if t.name in report.created else ("ok" if t.exists else "missing")

        def cell(actual: object, expected: object, exists: bool = t.exists) -> str:
            if not exists or actual is None or actual == expected:
                return str(expected)
            return f"{actual} (expected {expected})"

        table.add_row(
            t.name,
            state,
            cell(t.partitions, e.partitions),
            cell(t.replication_factor, e.replication_factor),
            cell(t.min_insync_replicas, e.min_insync_replicas),
            cell(t.retention_ms, e.retention_ms),
        )
    Console().print(table)
    err = Console(stderr=True)
    for problem in report.problems:
        err.print(f"[yellow]![/] {escape(str(problem))}", highlight=False, soft_wrap=True)


@app.command("ensure")
@_with_which
def ensure(
    *,
    which: _Which,
    strict: bool = typer.Option(False, "--strict", help="Exit 1 on any problem reported."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as JSON."),
) -> None:
    """Create the missing topics (events and DLQs) and verify the existing ones."""
    report = _report(ensure_configured_topics, which, as_json)
    if strict and report.problems:
        raise typer.Exit(1)


@app.command("describe")
@_with_which
def describe(
    *,
    which: _Which,
    as_json: bool = typer.Option(False, "--json", help="Print the topics as JSON."),
) -> None:
    """Show every topic the configuration implies: expected and actual settings."""
    _report(describe_configured_topics, which, as_json)
