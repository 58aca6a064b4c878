"""Liveness of the long-running commands, and ``orchestrator-state health`` to probe it.

``project``, ``snapshots run``, ``supervise``, ``api`` and ``dev`` touch a liveness file
(``--health-file`` or ``ORCHESTRATOR_HEALTH_FILE``; the container image sets it) every
few seconds from their own event loop, while their components run and, for the
supervisor, while the node's heartbeat succeeds. The file goes stale when the loop is
wedged or the process is gone, and it is removed on a clean stop.

``orchestrator-state health`` checks that file's age, or with ``--url`` an HTTP
endpoint (the API's ``/health``): exit 0 and one line when alive, exit 1 and one line
naming what is wrong otherwise. It is what the image's and compose's health checks run.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import typer
from rich.console import Console

from orchestrator.events import cancel_and_wait

T = TypeVar("T")

HEALTH_FILE_ENV = "ORCHESTRATOR_HEALTH_FILE"
TOUCH_EVERY_S = 5.0
DEFAULT_MAX_AGE_S = 30.0

HEALTH_FILE = typer.Option(
    None,
    "--health-file",
    envvar=HEALTH_FILE_ENV,
    show_default=False,
    help="Touch this file every few seconds while running (for health checks).",
)


class Liveness:
    """``async with Liveness(path, healthy):`` touches ``path`` while ``healthy()``."""

    def __init__(self, path: Path | None, healthy: Callable[[], bool] = lambda: True) -> None:
        self.path = path
        self.healthy = healthy
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Liveness:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.unlink(missing_ok=True)  # a file left by a previous run says nothing
            self._task = asyncio.create_task(self._touch_forever(), name="liveness")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType
    ) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)
        if self.path is not None:
            self.path.unlink(missing_ok=True)

    async def _touch_forever(self) -> None:
        assert self.path is not None
        while True:
            if self.healthy():
                self.path.touch()
            await asyncio.sleep(TOUCH_EVERY_S)


async def alive_while(work: Coroutine[Any, Any, T], path: Path | None) -> T:
    """Run ``work``, touching ``path`` while it runs."""
    async with Liveness(path):
        return await work


def health(
    health_file: Path | None = typer.Option(
        None,
        "--file",
        envvar=HEALTH_FILE_ENV,
        show_default=False,
        help="The liveness file a running command touches (see --health-file).",
    ),
    max_age: float = typer.Option(
        DEFAULT_MAX_AGE_S, "--max-age", min=1.0, help="Seconds after which the file is stale."
    ),
    url: str | None = typer.Option(
        None, "--url", help="Probe this HTTP endpoint instead (e.g. the API's /health)."
    ),
    timeout: float = typer.Option(5.0, "--timeout", min=0.1, help="Seconds to wait for --url."),
) -> None:
    """Exit 0 if the process is alive (fresh liveness file, or --url answers 2xx), else 1."""
    err = Console(stderr=True)
    if url is not None:
        ok, detail = _probe_url(url, timeout)
    elif health_file is not None:
        ok, detail = _probe_file(health_file, max_age)
    else:
        err.print(
            f"[bold red]error:[/] pass --url or --file (or set {HEALTH_FILE_ENV})", highlight=False
        )
        raise typer.Exit(2)
    if not ok:
        err.print(f"[bold red]unhealthy:[/] {detail}", highlight=False)
        raise typer.Exit(1)
    typer.echo(f"healthy: {detail}")


def _probe_file(path: Path, max_age: float) -> tuple[bool, str]:
    try:
        age = time.time() - os.stat(path).st_mtime
    except FileNotFoundError:
        return False, f"{path} does not exist (not started yet, or stopped)"
    if age > max_age:
        return False, f"{path} last touched {age:.0f}s ago (more than {max_age:g}s)"
    return True, f"{path} touched {age:.1f}s ago"


def _probe_url(url: str, timeout: float) -> tuple[bool, str]:
    import httpx

    try:
        response = httpx.get(url, timeout=timeout)
    except httpx.HTTPError as exc:
        return False, f"{url}: {type(exc).__name__}: {exc}"
    if not response.is_success:
        return False, f"{url}: HTTP {response.status_code} {response.text[:200]}"
    return True, f"{url}: HTTP {response.status_code}"
