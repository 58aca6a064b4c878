"""The one offset store of the PostgreSQL processors, and its one fencing rule.

A consumer group that writes PostgreSQL (a projection, the snapshotter) keeps where
each partition resumes in ``projection_offsets`` under its name: ``next_offset`` and a
``generation``. The pair is the **fence**: a member writes a partition only while the
row still holds the ``(next_offset, generation)`` it last saw, checked on the row
locked ``FOR UPDATE`` in the same transaction that writes the data and the next
offset. Another member that took the partition and wrote, or a rebuild swap (which
bumps the generation), changes the pair; the stale writer then rolls back instead of
writing. Rows lock in (topic, partition) order, so concurrent writers and the swap
cannot deadlock. Every method runs on a caller's connection (inside its transaction).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import asyncpg

TP = tuple[str, int]
Fence = tuple[int, int]
"""What a member expects in an offset row: ``(next_offset, generation)``."""


class PostgresOffsets:
    """The ``projection_offsets`` rows of one consumer group."""

    def __init__(self, projection: str) -> None:
        self.projection = projection

    async def claim(
        self, conn: asyncpg.Connection, tps: Iterable[TP], start: Mapping[TP, int] | None = None
    ) -> dict[TP, Fence]:
        """Make sure each partition has a row (from ``start``, default 0) and return the
        fences they hold: what a member taking the partitions over expects."""
        tps = sorted(tps)
        if not tps:
            return {}
        begin = start or {}
        await conn.execute(
            "INSERT INTO projection_offsets (projection, topic, partition, next_offset)"
            " SELECT $1, * FROM unnest($2::text[], $3::int4[], $4::int8[])"
            " ON CONFLICT (projection, topic, partition) DO NOTHING",
            self.projection,
            *_columns(tps),
            [begin.get(tp, 0) for tp in tps],
        )
        return await self._read(conn, tps, lock=False)

    async def stored(self, conn: asyncpg.Connection, tps: Iterable[TP]) -> dict[TP, Fence]:
        """The rows that exist for these partitions (absent ones are not in the result)."""
        return await self._read(conn, sorted(tps), lock=False)

    async def check(
        self, conn: asyncpg.Connection, expected: Mapping[TP, Fence]
    ) -> tuple[list[TP], dict[TP, Fence]]:
        """The fence: lock the rows of ``expected``'s partitions for this transaction;
        return the partitions whose row no longer holds the expected fence (empty: the
        caller may write) and what the rows hold."""
        tps = sorted(expected)
        stored = await self._read(conn, tps, lock=True)
        return [tp for tp in tps if stored.get(tp) != expected[tp]], stored

    async def advance(self, conn: asyncpg.Connection, next_offsets: Mapping[TP, int]) -> None:
        """Write the next offsets (after :meth:`check`, in its transaction)."""
        if not next_offsets:
            return
        await conn.execute(
            "UPDATE projection_offsets AS o SET next_offset = u.n, updated_at = now()"
            " FROM unnest($2::text[], $3::int4[], $4::int8[]) AS u(t, p, n)"
            " WHERE o.projection = $1 AND o.topic = u.t AND o.partition = u.p",
            self.projection,
            *_columns(list(next_offsets)),
            list(next_offsets.values()),
        )

    async def _read(
        self, conn: asyncpg.Connection, tps: list[TP], *, lock: bool
    ) -> dict[TP, Fence]:
        if not tps:
            return {}
        rows = await conn.fetch(
            "SELECT topic, partition, next_offset, generation FROM projection_offsets"
            " WHERE projection = $1 AND (topic, partition) IN"
            " (SELECT * FROM unnest($2::text[], $3::int4[]))"
            " ORDER BY topic, partition" + (" FOR UPDATE" if lock else ""),
            self.projection,
            *_columns(tps),
        )
        return {(r["topic"], r["partition"]): (r["next_offset"], r["generation"]) for r in rows}


def _columns(tps: list[TP]) -> tuple[list[str], list[int]]:
    """Topics and partitions as two arrays (for ``unnest``)."""
    return [t for t, _ in tps], [p for _, p in tps]


async def applied_offset(
    conn: asyncpg.Connection, projection: str, topic: str, partition: int
) -> int:
    """The next offset the projection will apply on ``topic[partition]`` (0 if none yet)."""
    value = await conn.fetchval(
        "SELECT next_offset FROM projection_offsets"
        " WHERE projection = $1 AND topic = $2 AND partition = $3",
        projection,
        topic,
        partition,
    )
    return 0 if value is None else int(value)
