"""Which claim-checked blobs the database still references (for blob retention).

Blob keys are content addresses (``blobs/<2 hex>/<sha256>``), so a blob is named here
by its sha256. A blob counts as referenced when its sha256 is in a ``$blob`` marker of
the event archive (``execution_events``, ``shared_events``: every execution still in
the read model keeps its whole archive) or of a shared variable's value (indexed
lookups, migrations 0013 and 0016), in the raw bytes of a dead letter (it may be replayed), or
in the session's ``kept`` table, which the caller fills (kept snapshots). One question
per page of stored blobs, so memory stays bounded whatever the store holds.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import asyncpg

from orchestrator.events import BLOB_URI_PATTERN as URI_PATTERN
from orchestrator.projections.settings import ReadModelTables

_KEPT_NAME = "blob_retention_kept"
KEPT = f"pg_temp.{_KEPT_NAME}"
_DIGESTS = "'strict $.**.\"$blob\".sha256'"
_HAS_MARKER = "t.payload::text LIKE '%\"$blob\"%'"
"""The predicate of the archives' partial indexes (migration 0016): only payloads with a
``$blob`` key anywhere are indexed, so the lookup says it too to be served by them."""


async def open_kept(conn: asyncpg.Connection) -> None:
    """Create the session's table of kept digests, seeded with the dead letters' ones.

    A dead letter holds the record's raw Avro bytes, where a blob URI is plain text."""
    await conn.execute(f"DROP TABLE IF EXISTS {KEPT}")
    await conn.execute(f"CREATE TEMP TABLE {_KEPT_NAME} (sha256 text PRIMARY KEY)")
    await conn.execute(
        f"INSERT INTO {KEPT} SELECT DISTINCT m[1] FROM dead_letters,"
        f" regexp_matches(encode(raw, 'escape'), '{URI_PATTERN}', 'g') AS m"
        " ON CONFLICT DO NOTHING"
    )


async def add_kept(conn: asyncpg.Connection, digests: Iterable[str]) -> None:
    """Add digests that must be kept (e.g. those a kept snapshot's state references)."""
    batch = sorted(set(digests))
    if batch:
        await conn.execute(
            f"INSERT INTO {KEPT} SELECT unnest($1::text[]) ON CONFLICT DO NOTHING", batch
        )


async def close_kept(conn: asyncpg.Connection) -> None:
    await conn.execute(f"DROP TABLE IF EXISTS {KEPT}")


async def referenced(
    conn: asyncpg.Connection,
    tables: ReadModelTables,
    digests: Sequence[str],
    *,
    excluding: Sequence[str] = (),
) -> set[str]:
    """The ``digests`` something in the database references.

    ``excluding``: execution ids whose archived events do not count (a dry run's view
    of executions the same run would retire)."""
    if not digests:
        return set()
    wanted = list(digests)
    found: set[str] = set()
    for table, column, where in (
        (
            tables.execution_events,
            "payload",
            f" AND {_HAS_MARKER} AND NOT (t.execution_id = ANY($2::text[]))",
        ),
        (tables.shared_events, "payload", f" AND {_HAS_MARKER}"),
        (tables.shared_variables, "value", ""),
    ):
        expr = f"jsonb_path_query_array(t.{column}, {_DIGESTS})"
        rows = await conn.fetch(
            f"SELECT DISTINCT d.sha FROM {table} AS t,"
            f" jsonb_array_elements_text({expr}) AS d(sha)"
            f" WHERE {expr} ?| $1::text[] AND d.sha = ANY($1::text[]){where}",
            *((wanted, list(excluding)) if "$2" in where else (wanted,)),
        )
        found.update(r[0] for r in rows)
    rows = await conn.fetch(f"SELECT sha256 FROM {KEPT} WHERE sha256 = ANY($1::text[])", wanted)
    found.update(r[0] for r in rows)
    return found
