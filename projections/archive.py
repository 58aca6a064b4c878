"""The PostgreSQL adapter of the event archive: the projection's ``execution_events``.

The raw Avro bytes exactly as the log delivered them (decoded here), read in keyset
pages on the ``(execution_id, partition, "offset")`` index, and the ``checkpoints``
table. One adapter serves restore, replay, trace, fork, the timeline and the
snapshotter's rebuilds.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from orchestrator.events import (
    ArchivedEvent,
    DecodeError,
    Envelope,
    EventArchive,
    Located,
    Position,
    default_codec,
)
from orchestrator.projections.settings import NEWEST_SAVE, ReadModelTables

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


def _table(name: str) -> str:
    if not _IDENT.match(name):
        raise ValueError(f"{name!r} is not a [schema.]table name")
    return name


class PostgresEventArchive(EventArchive):
    """Reads one projection's event archive through ``db`` (a pool or a connection).

    ``rows_read`` counts archive rows fetched so far: tests use it to prove that a
    replay streams (it reads one page ahead of what it has folded, never the rest).
    """

    def __init__(
        self,
        db: Any,
        codec: Any = None,
        *,
        events_table: str | None = None,
        checkpoints_table: str | None = None,
        tables: ReadModelTables | None = None,
    ) -> None:
        tables = tables or ReadModelTables()
        self._db = db
        self._decode = (codec or default_codec()).decode
        self.events_table = _table(events_table or tables.execution_events)
        self.checkpoints_table = _table(checkpoints_table or tables.checkpoints)
        # Row comparisons on (partition, "offset") are index conditions of the
        # (execution_id, partition, "offset") index: a range scan, not a filter.
        self._page = (
            f'SELECT topic, partition, "offset", raw FROM {self.events_table}'
            ' WHERE execution_id = $1 AND (partition, "offset") > ($2::int, $3::bigint)'
            ' AND (partition, "offset") < ($4::int, $5::bigint)'
            ' ORDER BY partition, "offset" LIMIT $6'
        )

    async def page(
        self, execution_id: str, after: tuple[int, int], before: tuple[int, int], limit: int | None
    ) -> Sequence[ArchivedEvent]:
        (lo_p, lo_o), (hi_p, hi_o) = after, before
        rows = await self._db.fetch(self._page, execution_id, lo_p, lo_o, hi_p, hi_o, limit)
        return self._archived(rows)

    def _archived(self, rows: Sequence[Mapping[str, Any]]) -> list[ArchivedEvent]:
        return [
            ArchivedEvent(Position(r["topic"], r["partition"], r["offset"]), envelope)
            for r in rows
            if (envelope := _decode(self._decode, r)) is not None
        ]

    async def first_after(self, execution_id: str, when: datetime) -> tuple[int, int] | None:
        row = await self._db.fetchrow(
            f'SELECT partition, "offset" FROM {self.events_table}'
            ' WHERE execution_id = $1 AND occurred_at > $2 ORDER BY partition, "offset" LIMIT 1',
            execution_id,
            when,
        )
        return None if row is None else (row["partition"], row["offset"])

    async def checkpoint(
        self, checkpoint_id: str, execution_id: str | None = None
    ) -> tuple[str, int] | None:
        """(execution_id, sequence) of a saved checkpoint: the checkpoints table, else the
        archived ``CheckpointSaved`` event (the table keeps only applied checkpoints)."""
        row = await self._db.fetchrow(
            f"SELECT execution_id, sequence FROM {self.checkpoints_table}"
            f" WHERE checkpoint_id = $1 AND ($2::text IS NULL OR execution_id = $2) {NEWEST_SAVE}",
            checkpoint_id,
            execution_id,
        )
        if row is None:
            row = await self._db.fetchrow(
                f"SELECT execution_id, sequence FROM {self.events_table}"
                " WHERE event_type = 'CheckpointSaved' AND outcome = 'applied'"
                " AND payload->>'checkpoint_id' = $1 AND ($2::text IS NULL OR execution_id = $2)"
                " ORDER BY occurred_at DESC, sequence DESC LIMIT 1",
                checkpoint_id,
                execution_id,
            )
        return None if row is None else (row["execution_id"], row["sequence"])

    async def locate(self, execution_id: str) -> Located | None:
        """The topic and partition of the execution's events, how many, the last sequence."""
        row = await self._db.fetchrow(
            f"SELECT topic, partition, count(*) AS events, max(sequence) AS last_sequence"
            f" FROM {self.events_table} WHERE execution_id = $1"
            " GROUP BY topic, partition ORDER BY count(*) DESC LIMIT 1",
            execution_id,
        )
        if row is None:
            return None
        return Located(row["topic"], row["partition"], row["events"], row["last_sequence"])

    async def applied(self, execution_id: str) -> list[ArchivedEvent]:
        """Every applied event of the execution, in log order (the demo's timeline)."""
        rows = await self._db.fetch(
            f'SELECT topic, partition, "offset", raw FROM {self.events_table}'
            " WHERE execution_id = $1 AND outcome = 'applied' ORDER BY partition, \"offset\"",
            execution_id,
        )
        return self._archived(rows)

    async def applied_events(
        self, execution_id: str, event_types: Sequence[str], max_sequence: int
    ) -> list[ArchivedEvent]:
        """Applied events of these types up to ``max_sequence`` (the fork copies them)."""
        rows = await self._db.fetch(
            f'SELECT topic, partition, "offset", raw FROM {self.events_table}'
            " WHERE execution_id = $1 AND outcome = 'applied' AND event_type = ANY($2::text[])"
            ' AND sequence <= $3 ORDER BY partition, "offset"',
            execution_id,
            list(event_types),
            max_sequence,
        )
        return self._archived(rows)


def _decode(decode: Any, row: Mapping[str, Any]) -> Envelope | None:
    """The archived event, or ``None`` when the codec refuses it now (over a limit): the
    processor would dead-letter it, so it is in no execution's fold."""
    try:
        envelope: Envelope = decode(bytes(row["raw"]))
    except DecodeError:
        return None
    return envelope
