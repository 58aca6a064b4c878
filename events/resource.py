"""``Resource``: the ``start()``/``stop()`` and ``async with`` shape every long-lived
component has (aiokafka's), written once; ``cancel_and_wait``: what a ``stop()`` does
with the background task its ``start()`` spawned."""

from __future__ import annotations

import asyncio
import contextlib
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
