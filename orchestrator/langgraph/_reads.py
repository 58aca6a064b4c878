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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.events import CheckpointSaved, CheckpointWritesSaved, UserData
from orchestrator.langgraph._codec import PIPELINE_PREFIX
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


_LIVE = "p.checkpoints @> jsonb_build_array(jsonb_build_object('checkpoint_id', c.checkpoint_id))"


class ThreadReader:
    """Queries over one runtime's read-model tables."""

    def __init__(self, runtime: StateRuntime) -> None:
        self.rt = runtime
        t = runtime.read_model.tables
        self._ck, self._ps, self._ev = t.checkpoints, t.pipeline_states, t.execution_events

    async def catch_up(self) -> None:
        """Read-your-writes: wait until the read model holds what this process wrote."""
        await self.rt.wait_for(self.rt.written())

    async def checkpoints(
        self,
        *,
        execution_ids: Sequence[str] | None = None,
        pipeline_id: str | None = None,
        name: str | None = None,
        before: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        limit: int | None = None,
    ) -> list[Saved]:
        """Live checkpoints matching every given condition, newest (by id) first."""
        rows = await self.rt.postgres("the LangGraph saver").fetch(
            f"SELECT c.execution_id, c.checkpoint_id, c.name, c.sequence, e.raw"
            f" FROM {self._ck} c JOIN {self._ps} p ON p.execution_id = c.execution_id"
            f" JOIN {self._ev} e ON e.execution_id = c.execution_id"
            "  AND e.sequence = c.sequence AND e.outcome = 'applied'"
            f" WHERE c.pipeline_id LIKE '{PIPELINE_PREFIX}%' AND {_LIVE}"
            " AND ($1::text[] IS NULL OR c.execution_id = ANY($1))"
            " AND ($2::text IS NULL OR c.pipeline_id = $2)"
            " AND ($3::text IS NULL OR c.name = $3)"
            ' AND ($4::text IS NULL OR c.name COLLATE "C" < $4)'
            " AND ($5::jsonb IS NULL OR c.metadata @> $5::jsonb)"
            ' ORDER BY c.name COLLATE "C" DESC, c.execution_id LIMIT $6',
            None if execution_ids is None else list(execution_ids),
            pipeline_id,
            name,
            before,
            None if metadata is None else json.dumps(dict(metadata)),
            limit,
        )
        out: list[Saved] = []
        for r in rows:
            payload = self.rt.codec.decode(bytes(r["raw"])).payload
            assert isinstance(payload, CheckpointSaved)
            if payload.delta_base is None:
                data = await self.user_data(payload.data)
            else:  # stored as a delta: its chain, from the whole copy on
                chain = await self.rt.read_model.checkpoint_chain(r["checkpoint_id"])
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
        rows = await self.rt.postgres("the LangGraph saver").fetch(
            "SELECT c.execution_id, c.pipeline_id, c.checkpoint_id, c.name, c.sequence,"
            f" c.metadata::text AS metadata FROM {self._ck} c"
            f" JOIN {self._ps} p ON p.execution_id = c.execution_id"
            f" WHERE c.pipeline_id LIKE '{PIPELINE_PREFIX}%' AND {_LIVE}"
            " AND ($1::text[] IS NULL OR c.pipeline_id = ANY($1))"
            " AND ($2::text[] IS NULL OR c.metadata->>'run_id' = ANY($2))"
            " ORDER BY c.execution_id, c.sequence",
            None if pipeline_ids is None else list(pipeline_ids),
            None if run_ids is None else list(run_ids),
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
        rows = await self.rt.postgres("the LangGraph saver").fetch(
            f"SELECT e.payload->>'checkpoint_id' AS checkpoint_id, e.raw FROM {self._ev} e"
            " JOIN unnest($1::text[], $2::text[], $3::bigint[]) AS k(eid, cid, seq)"
            "  ON e.execution_id = k.eid AND e.payload->>'checkpoint_id' = k.cid"
            "  AND e.sequence > k.seq"
            " WHERE e.event_type = 'CheckpointWritesSaved' AND e.outcome = 'applied'"
            " ORDER BY e.execution_id, e.sequence",
            [s.execution_id for s in saved],
            [s.checkpoint_id for s in saved],
            [s.sequence for s in saved],
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
