"""Run a started ``App`` until SIGTERM/Ctrl-C or a component's failure (``dev``, ``supervise``).

One loop for every command that runs the app: signals set ``stopping``; a component
that ends is logged once and makes the command exit 1; the liveness file is touched
meanwhile (see ``orchestrator._cli.health``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

from orchestrator._cli.health import Liveness
from orchestrator.app import App
from orchestrator.events import cancel_and_wait

log = logging.getLogger(__name__)

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def stop_signals() -> Iterator[asyncio.Event]:
    """An event set by SIGINT or SIGTERM while inside (call within the running loop)."""
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()
    for sig in _SIGNALS:
        loop.add_signal_handler(sig, stopping.set)
    try:
        yield stopping
    finally:
        for sig in _SIGNALS:
            loop.remove_signal_handler(sig)


async def run_until_stopped(
    app: App,
    stopping: asyncio.Event,
    *,
    what: str,
    health_file: Path | None = None,
    healthy: Callable[[], bool] = lambda: True,
) -> int:
    """0 once ``stopping`` is set; 1 (logged once) if a component of ``app`` ends first."""
    async with Liveness(health_file, healthy):
        waiting = asyncio.ensure_future(app.wait())
        stop = asyncio.ensure_future(stopping.wait())
        done, _ = await asyncio.wait({waiting, stop}, return_when=asyncio.FIRST_COMPLETED)
        if waiting in done:
            stop.cancel()
            try:
                waiting.result()
            except Exception as exc:
                log.error("%s: a component failed: %r", what, exc, exc_info=exc)
                return 1
        await cancel_and_wait(waiting)
        return 0
