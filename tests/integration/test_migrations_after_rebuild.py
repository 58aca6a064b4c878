"""Migrations that name indexes still find them on tables a rebuild swapped in.

``rebuild`` builds ``<table>__rebuild`` copies (``LIKE ... INCLUDING ALL``) and renames
them over the live tables; the copies' indexes get names PostgreSQL makes up. Migration
0016 drops the full blob-reference indexes of 0013 by name: on a database rebuilt in
between, the full index must not survive beside the partial one that replaces it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import asyncpg
import pytest
from _databases import MakeDatabase

from orchestrator.projections import migrator
from orchestrator.projections.errors import RebuildError
from orchestrator.projections.rebuilder import Rebuilder, _fresh_tables
from orchestrator.projections.settings import ProjectionSettings


async def _blob_indexes_partial(conn: asyncpg.Connection, table: str) -> list[bool]:
    """Whether each of the table's blob-reference indexes is partial, by index name."""
    found: list[bool] = await conn.fetchval(
        "SELECT array_agg(x.indpred IS NOT NULL ORDER BY c.relname) FROM pg_index x"
        " JOIN pg_class c ON c.oid = x.indexrelid WHERE x.indrelid = $1::regclass"
        " AND pg_get_indexdef(x.indexrelid) LIKE '%jsonb_path_query_array%'",
        table,
    )
    return found


async def _rebuild_swap(conn: asyncpg.Connection, settings: ProjectionSettings) -> None:
    """The rebuild's table steps, without folding anything: fresh copies, then the swap."""
    await _fresh_tables(conn, settings)
    async with conn.transaction():
        await Rebuilder(settings, "unused", "unused")._swap_tables(conn)


async def test_a_database_rebuilt_before_0016_keeps_only_the_partial_blob_indexes(
    make_database: MakeDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    every = migrator._migration_files()
    conn = await asyncpg.connect(await make_database(migrated=False))
    try:
        with monkeypatch.context() as m:
            m.setattr(migrator, "_migration_files", lambda: [f for f in every if f[0] <= 15])
            await migrator.migrate(conn)
        await _rebuild_swap(conn, ProjectionSettings())
        await migrator.migrate(conn)
        for table in ("execution_events", "shared_events"):
            assert await _blob_indexes_partial(conn, table) == [True]
    finally:
        await conn.close()


async def _index_names(conn: asyncpg.Connection) -> set[tuple[str, str]]:
    rows = await conn.fetch(
        "SELECT tablename, indexname FROM pg_indexes WHERE schemaname = 'public'"
    )
    return {(r["tablename"], r["indexname"]) for r in rows}


async def test_a_rebuild_keeps_every_index_name_later_migrations_may_name(
    make_database: MakeDatabase,
) -> None:
    conn = await asyncpg.connect(await make_database())
    try:
        before = await _index_names(conn)
        await _rebuild_swap(conn, ProjectionSettings())
        assert await _index_names(conn) == before
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def _fresh_copies(
    make_database: MakeDatabase,
) -> AsyncIterator[tuple[Rebuilder, str, asyncpg.Connection, asyncpg.Pool]]:
    """A migrated database whose rebuild copies were just made: the rebuilder (to swap),
    the database's DSN, a connection and a pool on it."""
    dsn = await make_database()
    settings = ProjectionSettings()
    conn = await asyncpg.connect(dsn)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        await _fresh_tables(conn, settings)
        yield Rebuilder(settings, dsn, "unused"), dsn, conn, pool
    finally:
        await pool.close()
        await conn.close()


async def _columns(conn: asyncpg.Connection) -> set[str]:
    rows = await conn.fetch(
        "SELECT column_name FROM information_schema.columns WHERE table_name = 'checkpoints'"
    )
    return {r["column_name"] for r in rows}


async def test_a_rebuild_refuses_to_swap_in_tables_older_than_a_migration_that_ran_meanwhile(
    make_database: MakeDatabase,
) -> None:
    """Migrations change the live tables, not a running rebuild's copies (made when it
    started): swapping those in would undo the migration under a schema_migrations row
    that says it ran. The swap is refused instead, and the live tables stay."""
    async with _fresh_copies(make_database) as (rebuilder, _, conn, pool):
        await conn.execute("ALTER TABLE checkpoints ADD COLUMN added_by_a_migration text")
        with pytest.raises(RebuildError, match="checkpoints"):
            await rebuilder._try_swap(pool)
        assert "added_by_a_migration" in await _columns(conn)


async def test_a_migration_committing_while_the_swap_waits_for_its_tables_is_not_undone(
    make_database: MakeDatabase,
) -> None:
    """A migration that holds a live table when the swap starts and commits while the
    swap waits for it: the swap must see its change (and refuse), not rename copies made
    before it over the migrated table."""
    async with _fresh_copies(make_database) as (rebuilder, dsn, conn, pool):
        migration = await asyncpg.connect(dsn)
        try:
            running = migration.transaction()
            await running.start()
            await migration.execute("ALTER TABLE checkpoints ADD COLUMN added_by_a_migration text")
            swap = asyncio.create_task(rebuilder._try_swap(pool))
            while not await conn.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted"):
                assert not swap.done(), swap.result()  # the swap waits for the migration
                await asyncio.sleep(0.02)
            await running.commit()
            with pytest.raises(RebuildError, match="checkpoints"):
                await swap
        finally:
            await migration.close()
        assert "added_by_a_migration" in await _columns(conn)


async def test_a_rebuild_keeps_an_index_whose_name_needs_quoting(
    make_database: MakeDatabase,
) -> None:
    """An index an operator added to a live table, named with a double quote: the copy's
    index is renamed after it, and back at the swap, as quoted identifiers."""
    conn = await asyncpg.connect(await make_database())
    try:
        await conn.execute('CREATE INDEX "ops ""name""" ON checkpoints (name)')
        before = await _index_names(conn)
        await _rebuild_swap(conn, ProjectionSettings())
        assert await _index_names(conn) == before
    finally:
        await conn.close()


@pytest.mark.parametrize(
    "change",
    [
        "ALTER TABLE checkpoints ADD CONSTRAINT progress_in_range CHECK (progress >= 0)",
        "ALTER TABLE checkpoints ALTER COLUMN progress SET DEFAULT 0",
    ],
)
async def test_a_rebuild_refuses_copies_without_a_constraint_or_default_added_meanwhile(
    make_database: MakeDatabase, change: str
) -> None:
    """A migration may add a CHECK constraint or a column default, not only columns and
    indexes: swapping in copies made before it would drop it as silently."""
    async with _fresh_copies(make_database) as (rebuilder, _, conn, pool):
        await conn.execute(change)
        with pytest.raises(RebuildError, match="checkpoints"):
            await rebuilder._try_swap(pool)
