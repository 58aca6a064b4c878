"""``Resource``: the ``start()``/``stop()`` and ``async with`` shape every long-lived
component has (aiokafka's), written once; ``cancel_and_wait``: what a ``stop()`` does
with the background task its ``start()`` spawned; ``stop_on_signals``: SIGTERM/SIGINT
as a clean stop of a processor run from the command line."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator
from typing import Any, Self


class Resource:
    """Started by ``start()``, stopped by ``stop()``; ``async with`` does both."""

    async def start(self) -> object:
        """Open what the resource holds (connections, tasks, processes); a subclass may
        return what callers need from it (``DevStack``: the endpoints)."""
        raise NotImplementedError

    async def stop(self) -> None:
        """Release it; safe to call after a failed or partial ``start``."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` (if any) and wait until it has ended, its cancellation swallowed."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


@contextlib.contextmanager
def stop_on_signals(request_stop: Callable[[], None], enabled: bool = True) -> Iterator[None]:
    """Within the block, SIGTERM and SIGINT call ``request_stop`` (a clean stop of a
    processor: it finishes the batch in hand); ``enabled=False`` leaves signals alone."""
    loop = asyncio.get_running_loop()
    signals = (signal.SIGTERM, signal.SIGINT) if enabled else ()
    for sig in signals:
        loop.add_signal_handler(sig, request_stop)
    try:
        yield
    finally:
        for sig in signals:
            with contextlib.suppress(ValueError, RuntimeError):
                loop.remove_signal_handler(sig)
