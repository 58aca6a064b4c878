"""A rebuild's copy tables: named like the live ones, and checked against them.

Index names:
``CREATE TABLE copy (LIKE live INCLUDING ALL)`` names the copied indexes itself
(``checkpoints__rebuild_execution_id_sequence_idx``); after the swap the live table
would carry those names, and a migration that names an index (``DROP INDEX
execution_events_blob_sha256``, as 0016 does) would miss it. Each copy index is renamed
``<live index name>__rebuild`` instead: the swap strips the suffix.

Drift: migrations change the live tables, not the copies a running rebuild made when it
started; the swap refuses (:func:`refuse_drift`) rather than undo them.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from orchestrator.projections.errors import RebuildError
from orchestrator.projections.settings import REBUILD_SUFFIX

_MAX_NAME = 63  # PostgreSQL's NAMEDATALEN - 1: a longer name would be cut, not kept


def _quoted(name: str) -> str:
    """``name`` as a quoted SQL identifier (a ``"`` inside doubled)."""
    return '"' + name.replace('"', '""') + '"'


async def rename_index(conn: asyncpg.Connection, schema: str, name: str, renamed: str) -> None:
    """``ALTER INDEX schema.name RENAME TO renamed``, both names quoted: index names come
    from the catalog, where an operator may have named one anything."""
    await conn.execute(f"ALTER INDEX {schema}.{_quoted(name)} RENAME TO {_quoted(renamed)}")


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
            await rename_index(conn, schema, r["name"], renamed)


_SHAPE = """
SELECT 'column ' || a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
       || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
       || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), '')
FROM pg_attribute AS a
LEFT JOIN pg_attrdef AS d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped
UNION ALL
SELECT 'index' || CASE WHEN x.indisunique THEN ' unique' ELSE '' END
       || substring(pg_get_indexdef(x.indexrelid) FROM ' USING .*$')
FROM pg_index AS x WHERE x.indrelid = $1::regclass
UNION ALL
SELECT 'constraint ' || pg_get_constraintdef(c.oid)
FROM pg_constraint AS c WHERE c.conrelid = $1::regclass
"""


async def schema_drift(conn: asyncpg.Connection, live: str, copy: str) -> list[str]:
    """What the live table has that its copy lacks, or the reverse (columns with type,
    NOT NULL and default, index and constraint definitions); empty when they match."""
    mine = {r[0] for r in await conn.fetch(_SHAPE, live)}
    theirs = {r[0] for r in await conn.fetch(_SHAPE, copy)}
    return sorted(f"+{s}" for s in mine - theirs) + sorted(f"-{s}" for s in theirs - mine)


async def refuse_drift(
    conn: asyncpg.Connection, projection: str, pairs: Sequence[tuple[str, str]]
) -> None:
    """Raise :class:`RebuildError` if a (live, copy) pair no longer has the same shape.

    Locks the live tables first (ACCESS EXCLUSIVE, as the swap's renames would, until
    the caller's transaction ends): a migration holding one now commits before the shape
    is read, so its change is seen and refused rather than renamed away."""
    tables = ", ".join(live for live, _ in pairs)
    await conn.execute(f"LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE")
    for live, copy in pairs:
        drift = await schema_drift(conn, live, copy)
        if drift:
            raise RebuildError(
                projection,
                "swapping",
                f"{live} changed since this rebuild copied it (a migration ran:"
                f" {', '.join(drift[:3])}); the live tables are untouched, rebuild again",
            )
