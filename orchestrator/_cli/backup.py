"""``orchestrator-state backup --to DEST`` and ``restore-backup --from SRC``.

DEST / SRC: ``s3://bucket/prefix`` or a directory. The deployment (topics, tables,
snapshot store, blobs) comes from ``--config FILE`` and the servers from the flags or
``DATABASE_URL``, ``KAFKA_BOOTSTRAP_SERVERS``, ``S3_ENDPOINT_URL`` and the ``AWS_*``
credentials, as every other command. See ``orchestrator.backup``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from pathlib import Path

import typer
from rich.console import Console

from orchestrator._cli import _options as opts
from orchestrator._cli._folded import folded, option
from orchestrator._cli._output import JSON_OPTION, emit_json
from orchestrator.app import PlanError
from orchestrator.backup import Deployment, deployment, restore_backup, take_backup
from orchestrator.config import load_config, load_config_file


def _deployment(
    config: Path | None,
    database_url: str | None,
    bootstrap_servers: str | None,
    s3_endpoint_url: str | None,
) -> Deployment:
    settings = (
        load_config_file(config).settings
        if config is not None
        else load_config("{}", "<environment>").settings
    )
    try:
        return deployment(
            settings,
            os.environ,
            dsn=database_url,
            bootstrap=bootstrap_servers,
            s3_endpoint_url=s3_endpoint_url,
        )
    except PlanError as exc:
        Console(stderr=True).print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(2) from None


# The deployment's flags (config, servers), the same on both commands.
_WHERE = (
    option("config", Path | None, opts.config_file()),
    option("database_url", str | None, opts.database_url("PostgreSQL DSN.")),
    option("bootstrap_servers", str | None, opts.bootstrap_servers()),
    option("s3_endpoint_url", str | None, opts.s3_endpoint_url()),
)
_with_deployment = folded("dep", _deployment, *_WHERE)


@_with_deployment
def backup(
    to: str = typer.Option(..., "--to", help="s3://bucket/prefix or a directory (new)."),
    *,
    dep: Deployment,
    as_json: bool = JSON_OPTION,
) -> None:
    """Back up the history (events, snapshots, blobs) as Avro files plus a manifest."""
    err = Console(stderr=True)
    dest = dep.folder(to, create=True)
    manifest = asyncio.run(take_backup(dep, dest, progress=lambda m: err.print(m, style="dim")))
    if as_json:
        emit_json(manifest)
        return
    c = manifest.counts
    keys = c.get("data_keys", 0) + c.get("data_keys_erased", 0)
    Console().print(
        f"backed up {c.get('pipeline_events', 0)} event(s) of {c.get('executions', 0)} "
        f"execution(s), {c.get('shared_events', 0)} shared event(s), "
        f"{c.get('snapshots', 0)} snapshot(s), {c.get('blobs', 0)} blob(s)"
        + (f", {c.get('data_keys', 0)} wrapped data key(s)" if keys else "")
        + f" to {dest.name}"
    )
    for note in manifest.notes:
        err.print(f"[yellow]{note}[/]")


@_with_deployment
def restore(
    from_: str = typer.Option(..., "--from", help="The backup: s3://bucket/prefix or a directory."),
    *,
    dep: Deployment,
    as_json: bool = JSON_OPTION,
) -> None:
    """Rebuild an EMPTY deployment from a backup (refused if it holds data); exit 1 if an
    execution did not come back to its backed-up sequence."""
    err = Console(stderr=True)
    src = dep.folder(from_)
    report = asyncio.run(restore_backup(dep, src, progress=lambda m: err.print(m, style="dim")))
    if as_json:
        emit_json({"consistent": report.consistent, **dataclasses.asdict(report)})
    else:
        skipped = ", ".join(f"{n} {what}" for what, n in sorted(report.skipped.items()))
        Console().print(
            f"restored {report.events} event(s), {report.shared_events} shared event(s), "
            f"{report.blobs} blob(s), {report.snapshots} snapshot(s)"
            + (f", {report.data_keys} data key(s)" if report.data_keys else "")
            + f"; read models rebuilt: {report.executions} execution(s)"
            + (f"; skipped {skipped}" if skipped else "")
        )
        for note in report.notes:
            err.print(f"[yellow]{note}[/]")
    for line in report.behind:
        err.print(f"[bold red]behind:[/] {line}")
    if not report.consistent:
        raise typer.Exit(1)
