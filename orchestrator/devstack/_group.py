"""A group of servers run as one (a Kafka, Redis or etcd cluster): started together,
stopped together, usable as ``async with``; its data directory removed if it made it."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orchestrator.events import Resource


class ServerGroup(Resource):
    """Subclasses give their servers in ``_parts`` and start them in ``start``."""

    def __init__(self, data_dir: Path | str | None, kind: str) -> None:
        """In ``data_dir``, or in a new temporary ``orchestrator-<kind>-...`` directory
        that ``stop`` removes."""
        self._owns_data_dir = data_dir is None
        self.data_dir = (
            Path(tempfile.mkdtemp(prefix=f"orchestrator-{kind}-"))
            if data_dir is None
            else Path(data_dir).expanduser().resolve()
        )

    @property
    def ready(self) -> bool:
        """Every server of the group is ready."""
        return all(part.ready for part in self._parts)

    @property
    def _parts(self) -> Sequence[Any]:
        raise NotImplementedError

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        await asyncio.gather(*(part.stop() for part in self._parts), return_exceptions=True)
        if self._owns_data_dir and self.data_dir.exists():
            await asyncio.to_thread(shutil.rmtree, self.data_dir, True)
