"""A group of servers run as one (a Kafka, Redis or etcd cluster): started together,
stopped together, usable as ``async with``; its data directory removed if it made it."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orchestrator.events import Resource


class ServerGroup(Resource):
    """Subclasses set ``data_dir`` and ``_owns_data_dir``, give their servers in
    ``_parts`` and start them in ``start``."""

    data_dir: Path
    _owns_data_dir: bool

    @property
    def _parts(self) -> Sequence[Any]:
        raise NotImplementedError

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        await asyncio.gather(*(part.stop() for part in self._parts), return_exceptions=True)
        if self._owns_data_dir and self.data_dir.exists():
            await asyncio.to_thread(shutil.rmtree, self.data_dir, True)
