"""``orchestrator-state snapshots ...``: run the snapshotter, restore, list, prune.

* ``run``: the snapshotter process (its own consumer group) until SIGTERM/Ctrl-C;
* ``restore EXECUTION``: a state at its latest event, ``--seq``, ``--at-time`` or
  ``--checkpoint``, printed as JSON, with the snapshot it started from;
* ``list EXECUTION``: the indexed snapshots of an execution;
* ``prune``: what retention would delete (a table); deletes only with ``--yes``;
* ``lifecycle``: applies the S3 ``lifecycle`` block where the store supports it.

Settings come from ``--config FILE`` (the seed's blocks: ``state_management.snapshots``,
the backend's ``organization`` / S3 settings, ``checkpointing``, ``compression``),
flags override; PostgreSQL, Kafka and S3 from ``DATABASE_URL``,
``KAFKA_BOOTSTRAP_SERVERS``, ``S3_ENDPOINT_URL``; keys from
``ORCHESTRATOR_SNAPSHOT_KEYS`` / ``ORCHESTRATOR_SNAPSHOT_ACTIVE_KEY``.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from orchestrator._cli import _options as opts
from orchestrator._cli._blobplan import print_blob_run
from orchestrator._cli._buckets import ensure_store_bucket
from orchestrator._cli._connect import kafka_reachable, pg_pool
from orchestrator._cli._metrics import metrics_option, with_metrics
from orchestrator._cli._output import JSON_OPTION, emit_json
from orchestrator._cli._points import (
    AT_RENAMED,
    at_time_option,
    parse_when,
    renamed_option,
    seq_option,
)
from orchestrator._cli._snapshot_setup import SnapshotSetup as _Setup
from orchestrator._cli._snapshot_setup import setup_store as _store
from orchestrator._cli._snapshot_setup import snapshot_setup as _setup
from orchestrator._cli.health import HEALTH_FILE, alive_while
from orchestrator._cli.topics import configured_security, configured_topics
from orchestrator.app import blob_retention, blob_store_beside, ensure_configured_topics
from orchestrator.events import History, default_codec, state_dict
from orchestrator.projections import PostgresEventArchive, ReadModelTables, close_pool
from orchestrator.snapshots import (
    PostgresSnapshotIndex,
    Snapshotter,
    SnapshotterSettings,
    earliest_offsets,
    plan_retention,
    run_retention,
    run_snapshotter,
    snapshot_history,
)

T = TypeVar("T")

app = typer.Typer(
    name="snapshots", help="Snapshots: run, restore, list, prune.", no_args_is_help=True
)

_DB = opts.database_url("PostgreSQL DSN (snapshot index, event archive, offsets).")
_KAFKA = opts.bootstrap_servers()
_CONFIG = opts.config_file()
_STORE = typer.Option(
    None,
    "--store",
    help="s3://bucket, s3://bucket/prefix, file://path or a path "
    "(default: state_management.snapshots.storage).",
)
_S3 = opts.s3_endpoint_url()


@app.command("run")
def run(
    database_url: str | None = _DB,
    bootstrap_servers: str | None = _KAFKA,
    config: Path | None = _CONFIG,
    store: str | None = _STORE,
    s3_endpoint_url: str | None = _S3,
    topic: str | None = typer.Option(None, "--topic", help="Override the pipeline topic."),
    name: str = typer.Option("snapshotter", "--name", help="Consumer group / offsets name."),
    frequency: int | None = typer.Option(None, "--frequency", help="Snapshot every N events."),
    batch_size: int = typer.Option(2000, "--batch-size", help="Records per batch."),
    archive_projection: str = typer.Option(
        "read_models",
        "--archive-projection",
        help="Projection whose execution_events archive rebuilds what no snapshot serves.",
    ),
    session_timeout_ms: int = typer.Option(10_000, "--session-timeout-ms"),
    health_file: Path | None = HEALTH_FILE,
    metrics_address: str = metrics_option("snapshots"),
) -> None:
    """Run the snapshotter until SIGTERM/Ctrl-C (migrations applied; bucket made if missing)."""
    from orchestrator.events import ConsumerSettings

    setup = _setup(config, store)
    policy = (
        setup.policy
        if frequency is None
        else dataclasses.replace(setup.policy, frequency=frequency)
    )
    settings = SnapshotterSettings(
        name=name,
        topic=topic or setup.topic,
        batch_size=batch_size,
        tables=setup.tables,
        archive_projection=archive_projection or None,
    )
    security = configured_security(config)
    snapshotter = Snapshotter(
        settings,
        security=security,
        dsn=opts.need_database(database_url or setup.dsn),
        bootstrap=opts.need_kafka(bootstrap_servers),
        store=_store(setup, s3_endpoint_url),
        codec=setup.codec,
        policy=policy,
        layout=setup.layout,
        consumer_settings=ConsumerSettings(
            client_id=settings.client_id,
            fetch_max_wait_ms=50,
            session_timeout_ms=session_timeout_ms,
            heartbeat_interval_ms=max(500, session_timeout_ms // 3),
        ),
    )
    topics = configured_topics(config, settings.topic)
    s3 = setup.s3
    endpoint = s3_endpoint_url or (s3.endpoint_url if s3 else None)
    ensure_store_bucket(snapshotter.store, endpoint, s3.region if s3 else None)

    async def main() -> None:
        await ensure_configured_topics(
            snapshotter.bootstrap_servers, topics, consumer_only=True, security=security
        )
        await run_snapshotter(snapshotter)

    opts.run(alive_while(with_metrics(main(), metrics_address, config), health_file))


def _restorer(pool: Any, setup: _Setup, endpoint_url: str | None) -> History:
    return snapshot_history(
        store=_store(setup, endpoint_url),
        index=PostgresSnapshotIndex(pool),
        archive=PostgresEventArchive(
            pool, default_codec(), checkpoints_table=setup.tables.checkpoints
        ),
        codec=setup.codec,
    )


@app.command("restore")
def restore(
    execution_id: str | None = typer.Argument(None, help="The execution (not with --checkpoint)."),
    seq: int | None = seq_option(),
    at_time: str | None = at_time_option(),
    checkpoint: str | None = typer.Option(None, "--checkpoint", help="State at a checkpoint."),
    database_url: str | None = _DB,
    config: Path | None = _CONFIG,
    store: str | None = _STORE,
    s3_endpoint_url: str | None = _S3,
    _at: str | None = renamed_option("--at", AT_RENAMED),
    _sequence: str | None = renamed_option("--sequence", "--seq N"),
) -> None:
    """Print a restored state as JSON, and where it came from (on stderr)."""
    setup = _setup(config, store)
    dsn = opts.need_database(database_url or setup.dsn)
    if (checkpoint is None) == (execution_id is None):
        raise typer.BadParameter("give an EXECUTION_ID or --checkpoint, not both")
    when = None if at_time is None else parse_when(at_time)

    async def go() -> Any:
        pool = await pg_pool(dsn, max_size=2)
        try:
            r = _restorer(pool, setup, s3_endpoint_url)
            if checkpoint is not None:
                return await r.at_checkpoint(checkpoint)
            assert execution_id is not None
            if seq is not None:
                return await r.at_sequence(execution_id, seq)
            if when is not None:
                return await r.at_time(execution_id, when)
            return await r.latest(execution_id)
        finally:
            await close_pool(pool)

    restored = opts.run(go())
    err = Console(stderr=True)
    err.print(
        f"from {restored.snapshot_key or 'the first event'} + "
        f"{restored.events_folded} event(s); last position {restored.position}"
    )
    for uri in restored.skipped:
        err.print(f"[yellow]skipped unusable snapshot {uri}[/]")
    Console().print_json(json.dumps(state_dict(restored.state), default=str))


@app.command("list")
def list_snapshots(
    execution_id: str = typer.Argument(..., help="The execution."),
    database_url: str | None = _DB,
    config: Path | None = _CONFIG,
    as_json: bool = JSON_OPTION,
) -> None:
    """The indexed snapshots of an execution, newest first."""
    dsn = opts.need_database(database_url or _setup(config, None).dsn)

    async def go() -> Any:
        pool = await pg_pool(dsn, max_size=1)
        try:
            return await PostgresSnapshotIndex(pool).candidates(execution_id)
        finally:
            await close_pool(pool)

    records = opts.run(go())
    if as_json:
        emit_json([{**dataclasses.asdict(r), "position": r.position.token()} for r in records])
        return
    table = Table("sequence", "epoch", "status", "position", "bytes", "raw", "created", "key")
    for r in records:
        table.add_row(
            str(r.sequence),
            str(r.epoch),
            r.status,
            r.position.token(),
            str(r.size_bytes),
            str(r.raw_size_bytes),
            f"{r.created_at:%Y-%m-%d %H:%M:%S}",
            r.object_key,
        )
    Console().print(table)


@app.command("prune")
def prune(
    yes: bool = typer.Option(False, "--yes", help="Delete; without it, only print the plan."),
    max_checkpoints: int | None = typer.Option(None, "--max-checkpoints"),
    max_age_days: float | None = typer.Option(None, "--max-age-days"),
    retention_days: float | None = typer.Option(None, "--retention-days"),
    blob_grace_hours: float | None = typer.Option(None, "--blob-grace-hours"),
    database_url: str | None = _DB,
    bootstrap_servers: str | None = _KAFKA,
    config: Path | None = _CONFIG,
    store: str | None = _STORE,
    s3_endpoint_url: str | None = _S3,
) -> None:
    """Apply retention (max_checkpoints, max_age_days, retention_days): print, then delete
    with --yes. Never deletes an execution's newest snapshot or the one covering history
    Kafka has already deleted (Kafka is asked when --bootstrap-servers is given). With
    retention_days, also retires executions finished over N days ago that a kept
    terminal snapshot covers: their read-model rows and archived events go. Then deletes
    the blobs nothing kept references, written over --blob-grace-hours plus Kafka's
    record lifetime ago (none without --bootstrap-servers)."""
    setup = _setup(config, store)
    dsn = opts.need_database(database_url or setup.dsn)
    overrides = {
        k: v
        for k, v in (
            ("max_checkpoints", max_checkpoints),
            ("max_age_days", max_age_days),
            ("retention_days", retention_days),
            ("blob_grace_hours", blob_grace_hours),
        )
        if v
    }
    policy = dataclasses.replace(setup.retention, **overrides)  # type: ignore[arg-type]
    security = configured_security(config)
    if bootstrap_servers:
        kafka_reachable(bootstrap_servers, security)
    snapshot_store = _store(setup, s3_endpoint_url)
    console = Console()

    async def go() -> int:
        pool = await pg_pool(dsn, max_size=2)
        try:
            index = PostgresSnapshotIndex(pool)
            records = await index.all()
            earliest = None
            if bootstrap_servers:
                earliest = await earliest_offsets(
                    bootstrap_servers,
                    {(r.position.topic, r.position.partition) for r in records},
                    security=security,
                )
            plan = plan_retention(records, policy, now=datetime.now(UTC), earliest_offsets=earliest)
            table = Table(
                "execution",
                "sequence",
                "created",
                "bytes",
                "reason",
                title=f"{len(plan.delete)} snapshot(s) to delete",
            )
            for d in plan.delete:
                r = d.record
                table.add_row(
                    r.execution_id,
                    str(r.sequence),
                    f"{r.created_at:%Y-%m-%d %H:%M}",
                    str(r.size_bytes),
                    d.reason,
                )
            console.print(table)
            console.print(
                f"{plan.kept} kept by the rules, {len(plan.protected)} protected, "
                f"{plan.bytes_freed} bytes to free"
                + (
                    ""
                    if earliest is not None
                    else " (Kafka not asked: pass --bootstrap-servers to protect the"
                    " snapshots covering deleted log history)"
                )
            )
            tables = ReadModelTables(
                pipeline_states=setup.tables.pipeline_states,
                task_states=setup.tables.task_states,
                checkpoints=setup.tables.checkpoints,
            )
            s3 = setup.s3
            blobs = await blob_retention(
                blob_store_beside(
                    setup.store_url,
                    endpoint_url=s3_endpoint_url or (s3.endpoint_url if s3 else None),
                    region=s3.region if s3 else None,
                ),
                setup.codec,
                policy,
                bootstrap=bootstrap_servers,
                topics=configured_topics(config),
                security=security,
            )
            run = await run_retention(
                pool,
                policy,
                index=index,
                store=snapshot_store,
                tables=tables,
                now=datetime.now(UTC),
                earliest=earliest,
                dry_run=not yes,
                blobs=blobs,
            )
            console.print(
                f"{len(run.retirement.retire)} finished execution(s) to retire (read-model"
                f" rows and archive), {len(run.retirement.stay)} finished kept: no kept"
                " terminal snapshot covers them"
            )
            print_blob_run(console, run.blobs, deleting=yes)
            if not yes:
                console.print("[yellow]nothing deleted: run again with --yes to delete[/]")
                return 0
            return run.deleted_snapshots
        finally:
            await close_pool(pool)

    deleted = opts.run(go())
    if yes:
        console.print(f"deleted {deleted} snapshot(s)")


@app.command("lifecycle")
def lifecycle(
    config: Path | None = _CONFIG,
    store: str | None = _STORE,
    s3_endpoint_url: str | None = _S3,
) -> None:
    """Apply the S3 backend's lifecycle block; print what was and was not applied."""
    setup = _setup(config, store)
    report = opts.run(_store(setup, s3_endpoint_url).apply_lifecycle(setup.lifecycle))
    Console().print(
        f"{report.store}: applied {list(report.applied)}, "
        f"NOT applied {list(report.not_applied)}\n{report.detail}"
    )
    if report.not_applied:
        raise typer.Exit(3)
