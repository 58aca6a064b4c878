"""A rebuild copy's indexes named after the live table's, so the swap keeps the names.

``CREATE TABLE copy (LIKE live INCLUDING ALL)`` names the copied indexes itself
(``checkpoints__rebuild_execution_id_sequence_idx``); after the swap the live table
would carry those names, and a migration that names an index (``DROP INDEX
execution_events_blob_sha256``, as 0016 does) would miss it. Each copy index is renamed
``<live index name>__rebuild`` instead: the swap strips the suffix.
"""

from __future__ import annotations

import asyncpg

from orchestrator.projections.settings import REBUILD_SUFFIX

_MAX_NAME = 63  # PostgreSQL's NAMEDATALEN - 1: a longer name would be cut, not kept

_INDEXES = """
SELECT x.indrelid = $1::regclass AS live, c.relname AS name, x.indisunique AS is_unique,
       substring(pg_get_indexdef(x.indexrelid) FROM ' USING .*$') AS body
FROM pg_index AS x JOIN pg_class AS c ON c.oid = x.indexrelid
WHERE x.indrelid IN ($1::regclass, $2::regclass) ORDER BY c.relname
"""


async def name_copy_indexes(conn: asyncpg.Connection, live: str, copy: str) -> None:
    """Rename ``copy``'s indexes ``<name>__rebuild`` after the live index with the same
    definition (method, columns or expressions, predicate, uniqueness)."""
    rows = await conn.fetch(_INDEXES, live, copy)
    names: dict[tuple[bool, str], list[str]] = {}
    for r in rows:
        if r["live"]:
            names.setdefault((r["is_unique"], r["body"]), []).append(r["name"])
    schema = copy.rpartition(".")[0] or "public"
    for r in rows:
        same = names.get((r["is_unique"], r["body"]))
        if r["live"] or not same:
            continue
        renamed = same.pop(0) + REBUILD_SUFFIX
        if len(renamed) <= _MAX_NAME and renamed != r["name"]:
            await conn.execute(f'ALTER INDEX {schema}."{r["name"]}" RENAME TO "{renamed}"')
