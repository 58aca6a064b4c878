"""`orchestrator-state`: the command line.

This module only assembles the app. Each sub-command group is a typer app in its
own module under `orchestrator/_cli/` (`services.py`, `config.py`, ...); add a
group by writing that module and one `add_typer` line below.

Commands raise; they do not print their own failures. The root group reports what
escapes a command as one line per problem on stderr, exit 1 (`_cli/_errors.py` maps
errors to lines; `--debug` adds the traceback). Commands connect through
`_cli/_connect.py` (deadlines) and print `--json` through `_cli/_output.py`.
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import traceback
import warnings
from importlib import metadata
from typing import Any

import click
import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.markup import escape
from typer import _click  # typer >= 0.23 runs on its vendored click: its Context
from typer.core import TyperGroup

from orchestrator._cli import _errors
from orchestrator._cli import api as api_cli
from orchestrator._cli import backup as backup_cli
from orchestrator._cli import bench as bench_cli
from orchestrator._cli import config as config_cli
from orchestrator._cli import demo as demo_cli
from orchestrator._cli import dev as dev_cli
from orchestrator._cli import executions as executions_cli
from orchestrator._cli import health as health_cli
from orchestrator._cli import history as history_cli
from orchestrator._cli import migrate as migrate_cli
from orchestrator._cli import monitoring as monitoring_cli
from orchestrator._cli import projections as projections_cli
from orchestrator._cli import redis_cmd as redis_cli
from orchestrator._cli import services as services_cli
from orchestrator._cli import snapshots as snapshots_cli
from orchestrator._cli import supervise as supervise_cli
from orchestrator._cli import topics as topics_cli
from orchestrator.config import redact_text
from orchestrator.events import configure_from_env

DEBUG_ENV = "ORCHESTRATOR_DEBUG"
_NOISY_LIBRARIES = ("aiokafka", "kafka", "asyncpg", "botocore", "urllib3")
_debug = [os.environ.get(DEBUG_ENV, "") not in ("", "0", "false")]


class _Root(TyperGroup):
    """The root group: whatever a command raises is reported here, once, for the whole
    tree (and for any caller of ``app``, CliRunner included): an expected failure is one
    line per problem on stderr, exit 1 (the mapping: ``orchestrator/_cli/_errors.py``);
    ``--debug`` adds the traceback."""

    def invoke(self, ctx: _click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.TyperException, typer.Exit, typer.Abort, click.ClickException):
            raise  # usage errors, --help, exit codes: click renders them
        except click.exceptions.Exit:
            raise
        except Exception as exc:
            _report(exc)
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=_Root,
    name="orchestrator-state",
    help="Event-sourced state management for AI pipelines (Kafka, PostgreSQL, S3).",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
    # Help text is plain text, for the whole tree: `s3://bucket[/prefix]` is not markup.
    rich_markup_mode=None,
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
app.add_typer(redis_cli.app, name="redis")
app.add_typer(bench_cli.app, name="bench")
app.add_typer(snapshots_cli.app, name="snapshots")
app.add_typer(monitoring_cli.app, name="monitoring")
app.add_typer(history_cli.app)  # replay, trace, check, bottlenecks, fork
app.command("migrate")(migrate_cli.migrate)
executions_app = typer.Typer(
    help="Executions in the read model, and the erasure of one's data.",
    invoke_without_command=True,
)
executions_app.callback(invoke_without_command=True)(executions_cli.executions)
executions_app.command("erase")(executions_cli.erase)
executions_app.command("rewrap-keys")(executions_cli.rewrap_keys)
app.add_typer(executions_app, name="executions")
app.add_typer(topics_cli.app, name="topics")
app.command("backup")(backup_cli.backup)
app.command("restore-backup")(backup_cli.restore)


def version() -> str:
    """The installed distribution's version."""
    try:
        return metadata.version("orchestrator-state")
    except metadata.PackageNotFoundError:  # imported from a checkout that was not installed
        return "unknown (not installed)"


def _print_version(value: bool) -> None:
    if value:
        typer.echo(f"orchestrator-state {version()}")
        raise typer.Exit()


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log at INFO level."),
    debug: bool = typer.Option(
        False, "--debug", envvar=DEBUG_ENV, help="Show the traceback of a failure."
    ),
    show_version: bool = typer.Option(
        False,
        "--version",
        callback=_print_version,
        is_eager=True,
        help="Print the version and exit.",
    ),
) -> None:
    _debug[0] = debug
    if not verbose:  # their per-attempt errors end up as one of ours, said once
        for name in _NOISY_LIBRARIES:
            logging.getLogger(name).setLevel(logging.CRITICAL)
    handler = RichHandler(console=Console(stderr=True), show_path=False)
    handler.addFilter(_redacted)
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(message)s",
        handlers=[handler],
        force=True,
    )


def _redacted(record: logging.LogRecord) -> bool:
    """No secret reaches the log: a DSN's password, a token=... in any message."""
    try:
        message = record.getMessage()
    except (TypeError, ValueError):
        return True
    record.msg, record.args = redact_text(message), None
    return True


def _report(exc: BaseException) -> None:
    """One line per problem on stderr (the traceback first with --debug)."""
    if _debug[0]:
        traceback.print_exception(exc)
    lines = _errors.explain(exc) or [_errors.unexpected(exc)]
    err = Console(stderr=True, soft_wrap=True)
    for line in lines:
        err.print(f"[bold red]error:[/] {escape(line)}", highlight=False)


def _use_uvloop() -> None:
    """Run every command's event loop on uvloop where it is installed (a dependency on
    Linux and macOS), as uvicorn does: one append's round trip through aiokafka took
    ~0.3 ms on it against ~0.8 ms on asyncio's own loop, and each task of a pipeline
    waits for a few of them. Library callers keep whatever loop they run."""
    try:
        import uvloop
    except ImportError:
        return
    with warnings.catch_warnings():  # event-loop policies are deprecated from Python 3.14
        warnings.simplefilter("ignore", DeprecationWarning)
        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def main() -> None:
    """Console-script entry point (the root group already reported what a command raised;
    this catches what escapes before a command runs)."""
    try:
        configure_from_env()  # on with the standard OTEL_* variables, else a no-op
        _use_uvloop()
        app()
    except Exception as exc:
        _report(exc)
        sys.exit(1)
