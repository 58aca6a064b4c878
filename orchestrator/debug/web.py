"""The timeline page's ``/state?at=SEQ`` answered from snapshots + the archive.

The query API (``projections.api``) may not import ``snapshots``, so by default its
history service folds the archive from the first event. A process of the top layer
that serves the API (``orchestrator-state api``, ``dev``) gives the same service the
snapshot index and store, so the state at any event of a 100,000-event execution
comes from the snapshot before it::

    app = create_app(settings)
    install_snapshot_states(app, settings.tables)
"""

from __future__ import annotations

import asyncpg
from fastapi import FastAPI

from orchestrator.projections import HistoryStateSource, ReadModelTables, set_state_source
from orchestrator.snapshots import PostgresSnapshotIndex, SnapshotBaseReader, SnapshotStore


def install_snapshot_states(
    app: FastAPI,
    tables: ReadModelTables,
    *,
    snapshot_store: SnapshotStore | None = None,
    s3_endpoint_url: str | None = None,
) -> None:
    """Answer the API's ``/executions/{id}/state`` from snapshots + the archive (objects
    in ``snapshot_store``, else in the store each index row names)."""

    def snapshots(pool: asyncpg.Pool) -> SnapshotBaseReader:
        index = PostgresSnapshotIndex(pool)
        return SnapshotBaseReader(index, None, snapshot_store, s3_endpoint_url=s3_endpoint_url)

    set_state_source(app, HistoryStateSource(tables, snapshots))
