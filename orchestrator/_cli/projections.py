"""``orchestrator-state project``, ``projections ...`` and ``dlq ...``: the read side.

``project`` runs a processor (migrations applied at start) until SIGTERM/Ctrl-C;
``projections rebuild`` replays the log into fresh tables and swaps them in;
``projections status`` shows the stored offsets; ``dlq list`` / ``dlq replay ID``
inspect and re-submit poison records. PostgreSQL and Kafka come from
``--database-url`` / ``--bootstrap-servers`` or ``DATABASE_URL`` /
``KAFKA_BOOTSTRAP_SERVERS``; table names and topics from ``--config FILE`` (the
seed's ``state_management`` block) or the defaults.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TypeVar

import asyncpg
import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from orchestrator._cli import _options as opts
from orchestrator._cli._connect import kafka_reachable, pg_connect, run_on
from orchestrator._cli._folded import folded, option
from orchestrator._cli._metrics import metrics_option, with_metrics
from orchestrator._cli._output import JSON_OPTION, emit_json
from orchestrator._cli.health import HEALTH_FILE, alive_while
from orchestrator._cli.topics import configured_security, configured_topics
from orchestrator.app import plan_postgres, plan_projection, topics_from
from orchestrator.config import load_config, load_config_file
from orchestrator.events import EventLog, ProducerSettings, default_codec
from orchestrator.projections import (
    OffsetRow,
    ProjectionSettings,
    RebuildProgress,
    list_dead_letters,
    rebuild,
    replay_dead_letter,
    run_processor,
    stored_offsets,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")

projections_app = typer.Typer(help="Rebuild and inspect projections.", no_args_is_help=True)
dlq_app = typer.Typer(help="Dead letters: poison records and their replay.", no_args_is_help=True)

_DB = opts.database_url()
_KAFKA = opts.bootstrap_servers()
_CONFIG = opts.config_file("YAML with the seed's state_management block.")


def _settings(
    name: str,
    config: Path | None,
    pipeline_topic: str | None = None,
    shared_topic: str | None = None,
) -> tuple[ProjectionSettings, str | None]:
    """Projection settings (and a DSN, if the config names one) from ``--config``, or
    from the ``ORCHESTRATOR_*`` overrides alone when no file is given."""
    if config is not None:  # errors: one line each, by cli.main
        loaded = load_config_file(config).settings
    else:
        loaded = load_config("{}", "<environment>").settings
    # The same topics, tables and limits as plan_app gives the app's processor.
    topics = topics_from(loaded, pipeline_topic=pipeline_topic, shared_topic=shared_topic)
    settings = plan_projection(
        loaded, name, pipeline_topic=topics.pipeline.name, shared_topic=topics.shared.name
    )
    return settings, plan_postgres(loaded).dsn


@dataclass(frozen=True)
class _Processor:
    """What ``project`` and ``projections rebuild`` run: settings and servers."""

    settings: ProjectionSettings
    dsn: str
    bootstrap: str
    config: Path | None


def _processor(
    database_url: str | None,
    bootstrap_servers: str | None,
    name: str,
    config: Path | None,
    pipeline_topic: str | None,
    shared_topic: str | None,
) -> _Processor:
    settings, config_dsn = _settings(name, config, pipeline_topic, shared_topic)
    dsn = opts.need_database(database_url or config_dsn)
    return _Processor(settings, dsn, opts.need_kafka(bootstrap_servers), config)


_with_processor = folded(
    "target",
    _processor,
    option("database_url", str | None, _DB),
    option("bootstrap_servers", str | None, _KAFKA),
    option(
        "name",
        str,
        typer.Option("read_models", "--projection", help="Projection (consumer group) name."),
    ),
    option("config", Path | None, _CONFIG),
    option("pipeline_topic", str | None, opts.PIPELINE_TOPIC),
    option("shared_topic", str | None, opts.SHARED_TOPIC),
)


@_with_processor
def project(
    *,
    target: _Processor,
    batch_size: int = typer.Option(2000, "--batch-size", min=1, help="Max records per batch."),
    session_timeout_ms: int = typer.Option(
        10_000, "--session-timeout-ms", min=1000, help="Group session timeout."
    ),
    health_file: Path | None = HEALTH_FILE,
    metrics_address: str = metrics_option("project"),
) -> None:
    """Run a projection processor until SIGTERM / Ctrl-C (migrations applied at start)."""
    settings = replace(
        target.settings, batch_size=batch_size, session_timeout_ms=session_timeout_ms
    )
    dsn, bootstrap, config = target.dsn, target.bootstrap, target.config
    topics = configured_topics(config, settings.pipeline_topic, settings.shared_topic)
    security = configured_security(config)
    logging.getLogger("projections").setLevel(logging.INFO)
    # This process only runs the processor: what start-up made (modules, settings) lives
    # as long as it does, so full garbage collections need not traverse it again.
    gc.freeze()
    processor = run_processor(settings, dsn, bootstrap, topics=topics, security=security)
    try:
        asyncio.run(alive_while(with_metrics(processor, metrics_address, config), health_file))
    except Exception:  # run_processor logged it once, with its context
        raise typer.Exit(1) from None


@projections_app.command("rebuild")
@_with_processor
def rebuild_command(
    *,
    target: _Processor,
    swap: bool = typer.Option(True, help="Swap the rebuilt tables in when caught up."),
) -> None:
    """Replay the log from offset zero into fresh tables; swap them in when caught up.

    Records Kafka's retention already deleted are folded from the live archive; if
    an execution's history is in neither, the rebuild refuses and names it."""
    settings, dsn, bootstrap, config = target.settings, target.dsn, target.bootstrap, target.config
    console = Console(stderr=True)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("offsets · {task.fields[records]} records · {task.fields[phase]}"),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task(f"rebuild {settings.name}", total=None, records=0, phase="starting")

        def show(p: RebuildProgress) -> None:
            bar.update(task, completed=p.done, total=p.total, records=p.records, phase=p.phase)

        security = configured_security(config)
        report = asyncio.run(
            rebuild(settings, dsn, bootstrap, on_progress=show, swap=swap, security=security)
        )
    verb = "swapped in" if report.swapped else "built (not swapped)"
    archived = (
        f" ({report.from_archive} of them from the archive: Kafka's retention deleted them)"
        if report.from_archive
        else ""
    )
    console.print(
        f"[green]✓[/] {settings.name}: {report.records} records folded{archived} in "
        f"{report.elapsed_s:.1f}s, {verb}"
    )


@projections_app.command("status")
def status(database_url: str | None = _DB, as_json: bool = JSON_OPTION) -> None:
    """The stored offsets of every projection."""
    dsn = opts.need_database(database_url)

    rows: list[OffsetRow] = run_on(lambda: pg_connect(dsn), stored_offsets)
    if as_json:
        emit_json([dataclasses.asdict(r) for r in rows])
        return
    table = Table("projection", "topic", "partition", "next offset", "generation", "updated")
    for r in rows:
        table.add_row(
            r.projection,
            r.topic,
            str(r.partition),
            str(r.next_offset),
            str(r.generation),
            f"{r.updated_at:%Y-%m-%d %H:%M:%S}",
        )
    Console().print(table)


@dlq_app.command("list")
def dlq_list(
    database_url: str | None = _DB,
    projection: str | None = typer.Option(None, "--projection", help="Only this projection."),
    pending: bool = typer.Option(False, "--pending", help="Only letters not yet replayed."),
    limit: int = typer.Option(100, "--limit", min=1),
    as_json: bool = JSON_OPTION,
) -> None:
    """Dead letters, newest first."""
    dsn = opts.need_database(database_url)

    letters = run_on(
        lambda: pg_connect(dsn),
        lambda conn: list_dead_letters(
            conn, projection=projection, include_replayed=not pending, limit=limit
        ),
    )
    if as_json:
        emit_json(letters)
        return
    table = Table(
        "id",
        "projection",
        "position",
        "error",
        "reason",
        "execution",
        "event",
        "bytes",
        "created",
        "replayed",
    )
    for d in letters:
        table.add_row(
            str(d.id),
            d.projection,
            f"{d.topic}[{d.partition}]@{d.offset}",
            d.error_class,
            d.reason,
            d.execution_id or "",
            d.event_type or "",
            str(d.size),
            f"{d.created_at:%Y-%m-%d %H:%M:%S}",
            "" if d.replayed_at is None else f"{d.replayed_at:%Y-%m-%d %H:%M:%S}",
        )
    Console().print(table)


@dlq_app.command("replay")
def dlq_replay(
    dead_letter_id: int = typer.Argument(..., help="The id shown by `dlq list`."),
    database_url: str | None = _DB,
    bootstrap_servers: str | None = _KAFKA,
) -> None:
    """Re-submit a dead letter's original bytes to its original topic (after a fix)."""
    dsn = opts.need_database(database_url)
    bootstrap = opts.need_kafka(bootstrap_servers)
    security = configured_security(None)
    kafka_reachable(bootstrap, security)

    async def replay(conn: asyncpg.Connection) -> str:
        producer = ProducerSettings(client_id="orchestrator-dlq-replay", security=security)
        async with EventLog(bootstrap, default_codec(), producer) as log:
            return (await replay_dead_letter(conn, log, dead_letter_id)).token()

    token = run_on(lambda: pg_connect(dsn), replay)
    Console().print(f"[green]✓[/] dead letter {dead_letter_id} re-submitted at {token}")
