"""What a rebuild reads where Kafka's retention already deleted the log: the archive.

Why: the live archive (``execution_events``, ``shared_events``) holds every folded
record with its topic, partition, offset and raw bytes. Where a partition's earliest
retained offset is past where the rebuild starts, the records before it exist only
there; a rebuild that read Kafka alone would drop every execution that started
before (design §5). So the rebuild first folds the archived records of that range,
in offset order, as if Kafka had served them, then reads Kafka from its earliest
offset on: the same stream, the same fold.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Mapping

import asyncpg

from orchestrator.events import Position, RawRecord
from orchestrator.projections.settings import ProjectionSettings

TP = tuple[str, int]
_PAGE = 2000


def truncated(starts: Mapping[TP, int], earliest: Mapping[TP, int]) -> dict[TP, tuple[int, int]]:
    """The ``[start, earliest)`` offset range of each partition Kafka no longer holds."""
    return {
        tp: (start, earliest[tp])
        for tp, start in starts.items()
        if tp in earliest and earliest[tp] > start
    }


def _archive_of(settings: ProjectionSettings, topic: str) -> tuple[str, str] | None:
    """(table, record key column) of the read model's archive of ``topic``'s records."""
    role = "shared" if topic == settings.shared_topic else "pipeline"
    names = settings.table_names()
    for table in settings.projection.tables:
        if table.archive == role and table.archive_key is not None:
            return names[table.key], table.archive_key
    return None


async def archived_records(
    conn: asyncpg.Connection,
    settings: ProjectionSettings,
    ranges: Mapping[TP, tuple[int, int]],
) -> AsyncIterator[list[RawRecord]]:
    """Pages of the live archive's records in ``ranges``, in offset order per partition."""
    for (topic, partition), (start, end) in sorted(ranges.items()):
        archive = _archive_of(settings, topic)
        if archive is None:
            continue  # nothing archived: the records are gone (a rebuild refuses a loss)
        table, key_column = archive
        offset = start
        while offset < end:
            rows = await conn.fetch(
                f'SELECT "offset", {key_column} AS key, raw,'
                " (extract(epoch FROM occurred_at) * 1000)::bigint AS ts"
                f' FROM {table} WHERE topic = $1 AND partition = $2 AND "offset" >= $3'
                f' AND "offset" < $4 ORDER BY "offset" LIMIT {_PAGE}',
                topic,
                partition,
                offset,
                end,
            )
            if not rows:
                break
            yield [
                RawRecord(
                    Position(topic, partition, r["offset"]),
                    r["key"].encode() if r["key"] is not None else None,
                    bytes(r["raw"]),
                    int(r["ts"]),
                )
                for r in rows
            ]
            offset = rows[-1]["offset"] + 1


async def skip_to(
    conn: asyncpg.Connection, projection: str, ranges: Mapping[TP, tuple[int, int]]
) -> None:
    """Move ``projection``'s offsets up to the end of each range: where the archive ends
    before Kafka's earliest offset (its last records were dead letters), Kafka may hold
    nothing after it to move them, and a swap waits to reach the live offsets."""
    await conn.execute(
        "UPDATE projection_offsets SET next_offset = u.o, updated_at = now()"
        " FROM unnest($2::text[], $3::int4[], $4::int8[]) AS u(t, p, o)"
        " WHERE projection = $1 AND topic = u.t AND partition = u.p AND next_offset < u.o",
        projection,
        [t for t, _ in ranges],
        [p for _, p in ranges],
        [end for _, end in ranges.values()],
    )


async def dropped_entities(
    conn: asyncpg.Connection, live: ProjectionSettings, rebuilt: ProjectionSettings
) -> list[str]:
    """Keys of the read model's entity table (executions, for the seed's model) the
    live tables hold and the rebuilt ones do not (a few, sorted)."""
    entity = live.projection.entity
    if entity is None:
        return []
    key, column = entity
    rows = await conn.fetch(
        f"SELECT {column}::text FROM {live.table_names()[key]}"
        f" EXCEPT SELECT {column}::text FROM {rebuilt.table_names()[key]}"
        " ORDER BY 1 LIMIT 21"
    )
    return [r[0] for r in rows]


def name_some(ids: Iterable[str], limit: int = 20) -> str:
    """``a, b, c`` (and how many more)."""
    ids = list(ids)
    shown = ", ".join(ids[:limit])
    return shown + (" and more" if len(ids) > limit else "")
