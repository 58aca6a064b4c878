"""``Resource``: the ``start()``/``stop()`` and ``async with`` shape every long-lived
component has (aiokafka's), written once."""

from __future__ import annotations

from typing import Self


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
