"""A group of servers run as one (a Kafka, Redis or etcd cluster): started together,
stopped together, usable as ``async with``; its data directory removed if it made it."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orchestrator.events import Resource


class ServerGroup(Resource):
    """Subclasses give their servers in ``_parts`` and, if starting them is not all,
    what joins them into one group in ``_join``."""

    def __init__(self, data_dir: Path | str | None, kind: str) -> None:
        """In ``data_dir``, or in a new temporary ``orchestrator-<kind>-...`` directory
        that ``stop`` removes."""
        self._owns_data_dir = data_dir is None
        self.data_dir = (
            Path(tempfile.mkdtemp(prefix=f"orchestrator-{kind}-"))
            if data_dir is None
            else Path(data_dir).expanduser().resolve()
        )
        #: Seconds from start() to ready, set once start() returns.
        self.startup_seconds: float | None = None

    @property
    def ready(self) -> bool:
        """Every server of the group is ready."""
        return all(part.ready for part in self._parts)

    @property
    def _parts(self) -> Sequence[Any]:
        raise NotImplementedError

    async def start(self) -> None:
        """Start every server at once (each may need the others for a quorum), then
        ``_join`` them; on any failure, stop the whole group again."""
        began = time.monotonic()
        self.data_dir.mkdir(parents=True, exist_ok=True)
        try:
            await asyncio.gather(*(part.start() for part in self._parts))
            await self._join()
        except BaseException:
            await self.stop()
            raise
        self.startup_seconds = time.monotonic() - began

    async def _join(self) -> None:
        """What makes the started servers one group (default: nothing more)."""

    async def stop(self) -> None:
        await asyncio.gather(*(part.stop() for part in self._parts), return_exceptions=True)
        if self._owns_data_dir and self.data_dir.exists():
            await asyncio.to_thread(shutil.rmtree, self.data_dir, True)
