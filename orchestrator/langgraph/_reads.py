"""Reading LangGraph threads back from the read models.

Checkpoints come from the ``checkpoints`` table (one row per applied
``CheckpointSaved``), restricted to the ones still listed in their execution's
``pipeline_states.checkpoints`` (``CheckpointsDeleted`` withdraws them there), with
their event from the archive (``execution_events``) for the data; pending writes are
the archived ``CheckpointWritesSaved`` events after their checkpoint. User data is
decoded with the blob store (sha256-verified) when it was claim-checked.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.events import CheckpointSaved, CheckpointWritesSaved, UserData
from orchestrator.langgraph._codec import PIPELINE_PREFIX
from orchestrator.projections import CheckpointQuery, ProjectionSettings, ReadModelQueries
from orchestrator.state import StateRuntime, decode_any, decode_chain


@dataclass(frozen=True, slots=True)
class Saved:
    """One live LangGraph checkpoint: its execution, product id, sequence and data."""

    execution_id: str
    checkpoint_id: str
    name: str
    sequence: int
    data: Any


@dataclass(frozen=True, slots=True)
class Listed:
    """A live checkpoint without its data (for deletes, prunes and copies)."""

    execution_id: str
    pipeline_id: str
    checkpoint_id: str
    name: str
    sequence: int
    metadata: Any


class ThreadReader:
    """Queries over one runtime's read-model tables."""

    def __init__(self, runtime: StateRuntime) -> None:
        self.rt = runtime
        self._settings = ProjectionSettings(tables=runtime.read_model.tables)

    def _queries(self) -> ReadModelQueries:
        """The read model's queries (PostgreSQL only: the saver refuses other backends)."""
        return ReadModelQueries(self.rt.postgres("the LangGraph saver"), self._settings)

    async def catch_up(self) -> None:
        """Read-your-writes: wait until the read model holds what this process wrote."""
        await self.rt.wait_for(self.rt.written())

    async def checkpoints(self, query: CheckpointQuery) -> list[Saved]:
        """Live checkpoints that meet ``query``, newest (by id) first."""
        rows = await self._queries().live_checkpoints(PIPELINE_PREFIX, query)
        out: list[Saved] = []
        for r in rows:
            payload = self.rt.codec.decode(bytes(r["raw"])).payload
            assert isinstance(payload, CheckpointSaved)
            if payload.delta_base is None:
                data = await self.user_data(payload.data)
            else:  # stored as a delta: its chain, from the whole copy on
                at = (r["execution_id"], r["sequence"])
                chain = await self.rt.read_model.checkpoint_chain(r["checkpoint_id"], at)
                data = await decode_chain(chain or [], self.rt.blob_store, self.rt.data_keys)
            out.append(Saved(r["execution_id"], r["checkpoint_id"], r["name"], r["sequence"], data))
        return out

    async def listed(
        self,
        *,
        pipeline_ids: Sequence[str] | None = None,
        run_ids: Sequence[str] | None = None,
    ) -> list[Listed]:
        """Live checkpoints of some threads, or of some runs, oldest first."""
        rows = await self._queries().listed_checkpoints(
            PIPELINE_PREFIX, pipeline_ids=pipeline_ids, run_ids=run_ids
        )
        return [
            Listed(
                r["execution_id"],
                r["pipeline_id"],
                r["checkpoint_id"],
                r["name"],
                r["sequence"],
                None if r["metadata"] is None else json.loads(r["metadata"]),
            )
            for r in rows
        ]

    async def writes(
        self, saved: Sequence[Saved | Listed]
    ) -> dict[str, list[tuple[CheckpointWritesSaved, Any]]]:
        """The applied ``CheckpointWritesSaved`` after each checkpoint, by product
        checkpoint id, in log order, with their writes decoded."""
        if not saved:
            return {}
        rows = await self._queries().events_after_checkpoints(
            "CheckpointWritesSaved", [(s.execution_id, s.checkpoint_id, s.sequence) for s in saved]
        )
        out: dict[str, list[tuple[CheckpointWritesSaved, Any]]] = {}
        for r in rows:
            payload = self.rt.codec.decode(bytes(r["raw"])).payload
            assert isinstance(payload, CheckpointWritesSaved)
            value = await self.user_data(payload.writes)
            out.setdefault(r["checkpoint_id"], []).append((payload, value))
        return out

    async def user_data(self, value: UserData | None) -> Any:
        """Decode user data; claim-checked values are fetched and verified off the loop,
        sealed ones decrypted with their thread's data key."""
        if value is None:
            return None
        return await decode_any(value, self.rt.blob_store, self.rt.data_keys)
