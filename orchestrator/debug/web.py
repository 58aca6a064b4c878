"""The timeline page's ``/state?at=SEQ`` answered from snapshots + the archive.

The query API (``projections.api``) may not import ``snapshots``, so by default it folds
the archive from the first event. A process of the top layer that serves the API
(``orchestrator-state api``, ``dev``) installs this source instead, so the state at
any event of a 100,000-event execution comes from the snapshot before it::

    app = create_app(settings)
    install_snapshot_states(app, settings.tables)
"""

from __future__ import annotations

import asyncpg
from fastapi import FastAPI

from orchestrator.debug.debugger import StateDebugger
from orchestrator.debug.errors import HistoryNotFound
from orchestrator.debug.replay import Target
from orchestrator.events.fold import Outcome
from orchestrator.projections.api.routes_timeline import StateAt, set_state_source
from orchestrator.projections.settings import ProjectionSettings, ReadModelTables
from orchestrator.snapshots import SnapshotStore


class SnapshotStateSource:
    """States at a sequence from the newest snapshot before it plus the archive."""

    def __init__(
        self,
        tables: ReadModelTables,
        *,
        snapshot_store: SnapshotStore | None = None,
        s3_endpoint_url: str | None = None,
    ) -> None:
        self.projection = ProjectionSettings(tables=tables)
        self.snapshot_store = snapshot_store
        self.s3_endpoint_url = s3_endpoint_url

    async def state_at(
        self, pool: asyncpg.Pool, execution_id: str, sequence: int | None
    ) -> StateAt | None:
        debugger = StateDebugger(
            pool=pool,
            projection=self.projection,
            snapshot_store=self.snapshot_store,
            s3_endpoint_url=self.s3_endpoint_url,
        )
        try:
            end = (await debugger.replay(execution_id, Target(sequence=sequence))).state
        except HistoryNotFound:
            return None
        last = end.last_sequence
        answer = StateAt(end, None, None, None, "snapshot+archive")
        steps = debugger.replay_steps(execution_id, Target(sequence=last), start_sequence=last - 1)
        async for item in steps:
            if item.event.sequence == last and item.outcome is Outcome.APPLIED:
                answer = StateAt(end, item.before, item.event, item.position, answer.source)
        return answer


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
