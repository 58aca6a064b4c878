"""The timeline page's ``/state?at=SEQ`` answered from snapshots + the archive.

The query API (``projections.api``) may not import ``snapshots``, so by default its
history service folds the archive from the first event. A process of the top layer
that serves the API (``orchestrator-state api``, ``dev``) installs the same service
with the snapshot index and store, so the state at any event of a 100,000-event
execution comes from the snapshot before it::

    app = create_app(settings)
    install_snapshot_states(app, settings.tables)
"""

from __future__ import annotations

import asyncpg
from fastapi import FastAPI

from orchestrator.projections.api.routes_timeline import (
    HistoryStateSource,
    StateAt,
    set_state_source,
)
from orchestrator.projections.settings import ReadModelTables
from orchestrator.snapshots import SnapshotBaseReader, SnapshotStore
from orchestrator.snapshots.postgres import PostgresSnapshotIndex


class SnapshotStateSource:
    """States at a sequence from the newest snapshot before it plus the archive."""

    def __init__(
        self,
        tables: ReadModelTables,
        *,
        snapshot_store: SnapshotStore | None = None,
        s3_endpoint_url: str | None = None,
    ) -> None:
        self.tables = tables
        self.snapshot_store = snapshot_store
        self.s3_endpoint_url = s3_endpoint_url

    async def state_at(
        self, pool: asyncpg.Pool, execution_id: str, sequence: int | None
    ) -> StateAt | None:
        bases = SnapshotBaseReader(
            PostgresSnapshotIndex(pool),
            None,
            self.snapshot_store,
            s3_endpoint_url=self.s3_endpoint_url,
        )
        source = HistoryStateSource(self.tables, bases, label="snapshot+archive")
        return await source.state_at(pool, execution_id, sequence)


def install_snapshot_states(
    app: FastAPI,
    tables: ReadModelTables,
    *,
    snapshot_store: SnapshotStore | None = None,
    s3_endpoint_url: str | None = None,
) -> None:
    """Answer the API's ``/executions/{id}/state`` from snapshots + the archive."""
    set_state_source(
        app,
        SnapshotStateSource(tables, snapshot_store=snapshot_store, s3_endpoint_url=s3_endpoint_url),
    )
