"""``orchestrator-state demo``: a pipeline that survives the SIGKILL of its worker."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import typer
from rich.console import Console

from orchestrator.demo import DemoFailed, run_demo
from orchestrator.devstack import DEVSTACK_KAFKA, DevstackError


def demo(
    data_dir: Path | None = typer.Option(
        None, "--data-dir", help="Keep the services' data here (default: a temp dir, removed)."
    ),
    kafka: str = typer.Option(
        "auto",
        "--kafka",
        envvar=DEVSTACK_KAFKA,
        help="auto: Apache Kafka if Java is available, else Tansu.",
    ),
    page_seconds: float = typer.Option(1.0, "--page-seconds", min=0.2, help="One search page."),
) -> None:
    """Run research_assistant, SIGKILL its worker mid-task, watch it recover."""
    console = Console()
    err = Console(stderr=True)
    if not logging.getLogger().isEnabledFor(logging.INFO):  # without -v: the story only
        for noisy in ("aiokafka", "orchestrator.runtime"):
            logging.getLogger(noisy).setLevel(logging.CRITICAL)
    if kafka not in ("auto", "apache", "tansu"):
        raise typer.BadParameter("auto, apache or tansu", param_hint="--kafka")
    try:
        figures = asyncio.run(
            run_demo(console, data_dir=data_dir, kafka_impl=kafka, page_seconds=page_seconds)  # type: ignore[arg-type]
        )
    except (DemoFailed, DevstackError) as exc:
        err.print(f"[bold red]demo failed:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    console.print(
        f"[dim]services up in {figures['services_start']:.1f}s; demo ran "
        f"{figures['after_services']:.1f}s after that; kill → completed "
        f"{figures['kill_to_completed']:.1f}s[/]"
    )
