"""The read model as ``check`` reads it, from its :class:`Projection` declaration (only
``projections`` issues SQL on read-model tables).

Why: ``check`` compares the stored rows with the fold of the history. Which table is
the archive of the pipeline topic, which is the entity table and its key, which tables
hold rows per entity and their columns: the declaration says, so a read model's
tables are spelled once, and ``orchestrator.debug`` keeps only the comparison.
Every read runs on the caller's connection, inside its REPEATABLE READ transaction
(one snapshot: a running processor cannot make a false alarm).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import asyncpg

from orchestrator.projections.projection import Projection, Table
from orchestrator.projections.settings import ProjectionSettings


class ReadModelAudit:
    """Reads of the read model ``settings`` names, on ``conn``."""

    def __init__(self, conn: asyncpg.Connection, settings: ProjectionSettings) -> None:
        self.conn = conn
        self.settings = settings
        self.projection: Projection = settings.projection
        self.names = settings.table_names()
        if self.projection.entity is None:
            raise ValueError(f"read model {self.projection.kind}: no entity table declared")
        self.entity_table, self.key = self.projection.entity
        self._archive = next(t for t in self.projection.tables if t.archive == "pipeline")

    def entity_tables(self) -> list[Table]:
        """The declared tables holding rows per entity (with an entity key column),
        besides the archive: what the fold of one entity's history writes."""
        return [
            t
            for t in self.projection.tables
            if t.write != "append" and any(c == self.key for c, _ in t.columns)
        ]

    def _of_pipeline(self, placeholder: str) -> str:
        """An ``AND`` clause: the entity is in pipeline ``placeholder`` (its row, or any
        of its archived events, says so)."""
        n = self.names
        return (
            f" AND {self.key} IN (SELECT {self.key} FROM {n[self.entity_table]}"
            f" WHERE pipeline_id = {placeholder} UNION SELECT {self.key}"
            f" FROM {n[self._archive.key]} WHERE pipeline_id = {placeholder})"
        )

    async def archived(
        self, pipeline_id: str | None, *, prefetch: int = 2000
    ) -> AsyncIterator[asyncpg.Record]:
        """The archived records of the pipeline topic (of ``pipeline_id``'s entities),
        by entity and log position: the entity key, topic, partition, offset, raw."""
        where = "" if pipeline_id is None else self._of_pipeline("$1")
        sql = (
            f'SELECT {self.key}, topic, partition, "offset", raw'
            f" FROM {self.names[self._archive.key]} WHERE TRUE{where}"
            f' ORDER BY {self.key}, partition, "offset"'
        )
        args: list[Any] = [] if pipeline_id is None else [pipeline_id]
        async for row in self.conn.cursor(sql, *args, prefetch=prefetch):
            yield row

    async def applied_offsets(self, topic: str) -> dict[int, int]:
        """``partition -> next offset`` the projection will apply on ``topic``."""
        rows = await self.conn.fetch(
            "SELECT partition, next_offset FROM projection_offsets"
            " WHERE projection = $1 AND topic = $2",
            self.settings.name,
            topic,
        )
        return {r["partition"]: r["next_offset"] for r in rows}

    async def rows(self, keys: Sequence[str]) -> dict[str, dict[str, list[asyncpg.Record]]]:
        """``table key -> entity key -> stored rows`` of :meth:`entity_tables`."""
        out: dict[str, dict[str, list[asyncpg.Record]]] = {}
        for table in self.entity_tables():
            by_key: dict[str, list[asyncpg.Record]] = {}
            for r in await self.conn.fetch(
                f"SELECT * FROM {self.names[table.key]} WHERE {self.key} = ANY($1::text[])",
                list(keys),
            ):
                by_key.setdefault(r[self.key], []).append(r)
            out[table.key] = by_key
        return out

    async def entities(self, pipeline_id: str | None) -> list[str]:
        """Every entity key of the entity table (of ``pipeline_id``), sorted."""
        sql = f"SELECT {self.key} FROM {self.names[self.entity_table]}"
        args: list[Any] = []
        if pipeline_id is not None:
            sql += " WHERE pipeline_id = $1"
            args.append(pipeline_id)
        return [r[self.key] for r in await self.conn.fetch(sql + f" ORDER BY {self.key}", *args)]

    async def dead_letters(
        self, projections: Sequence[str], pipeline_id: str | None, *, limit: int = 1000
    ) -> list[asyncpg.Record]:
        """Dead letters of ``projections`` never replayed (of ``pipeline_id``'s
        entities), oldest first."""
        sql = (
            'SELECT id, topic, partition, "offset", execution_id, event_type, error_class,'
            " reason, created_at FROM dead_letters WHERE projection = ANY($1::text[])"
            " AND replayed_at IS NULL"
        )
        args: list[Any] = [list(projections)]
        if pipeline_id is not None:
            sql += self._of_pipeline("$2")
            args.append(pipeline_id)
        return list(await self.conn.fetch(sql + f" ORDER BY id LIMIT {int(limit)}", *args))
