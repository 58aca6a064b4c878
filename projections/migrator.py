"""Versioned SQL migrations, applied idempotently under an advisory lock.

A tiny runner rather than a tool: the well-kept migration tools for Python
(alembic, yoyo) bring SQLAlchemy or a sync driver, and our migrations need only
ordered ``.sql`` files with the seed's configurable table names substituted.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources

import asyncpg

from orchestrator.projections.executions import EXECUTIONS
from orchestrator.projections.indexes import DEFAULT_INDEXES, ensure_indexes
from orchestrator.projections.projection import registered

log = logging.getLogger(__name__)

# Any constant will do; it only has to be the same for every process of this product.
_ADVISORY_LOCK_KEY = 0x6F72_6368_7374  # "orchst"
# Migrations rewritten after release without changing what they leave in the database:
# the checksums of their earlier texts, which databases may have recorded. 0015: its
# backfill made set-based (it was quadratic in an execution's checkpoints, under
# ACCESS EXCLUSIVE locks); the rows it writes are the same.
_EARLIER_CHECKSUMS: dict[int, frozenset[str]] = {
    15: frozenset({"d5e4be1ca7ea7a64809f933a9407755b3a34d342d5484dea5d2e7c2ffd58a94c"}),
}
_TEMPLATE_KEY = re.compile(r"\{([a-z_]+)\}")
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)?$")


@dataclass(frozen=True, slots=True)
class TableNames:
    """The seed's PostgreSQL ``schema`` block: where the three state tables live."""

    pipeline_states: str = "public.pipeline_states"
    task_states: str = "public.task_states"
    checkpoints: str = "public.checkpoints"
    indexes: tuple[str, ...] = DEFAULT_INDEXES
    """The seed's ``indexes``: columns of these tables to index (``projections.indexes``)."""

    def __post_init__(self) -> None:
        for field, value in (
            ("pipeline_states", self.pipeline_states),
            ("task_states", self.task_states),
            ("checkpoints", self.checkpoints),
        ):
            if not _IDENT.match(value):
                raise ValueError(f"schema.{field}: {value!r} is not a [schema.]table name")

    def substitutions(self) -> dict[str, str]:
        """Template values for the migration files: ``{x}`` and ``{x_name}`` (bare)."""
        subs: dict[str, str] = {}
        for field in ("pipeline_states", "task_states", "checkpoints"):
            value: str = getattr(self, field)
            subs[field] = value
            subs[f"{field}_name"] = value.rsplit(".", 1)[-1]
        return subs


def _migration_files() -> list[tuple[int, str, str]]:
    """Every registered read model's migrations, in version order (versions are unique
    across read models: they share ``schema_migrations``)."""
    found: dict[int, tuple[str, str]] = {}
    models = (EXECUTIONS, *registered())  # the seed's first, whoever imported what
    sources = dict.fromkeys(p.migrations for p in models if p.migrations)
    for source in sources:
        for name, text in _files(source):
            match = re.match(r"^(\d{4})_.*\.sql$", name)
            if not match:
                continue
            version = int(match.group(1))
            if version in found:
                raise RuntimeError(
                    f"migration {name}: version {version} is taken by {found[version][0]};"
                    " number it after every registered read model's"
                )
            found[version] = (name, text)
    return [(v, name, text) for v, (name, text) in sorted(found.items())]


def _files(source: str | tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    if not isinstance(source, str):
        return list(source)
    return [(e.name, e.read_text()) for e in resources.files(source).iterdir() if e.is_file()]


async def migrate(conn: asyncpg.Connection, tables: TableNames | None = None) -> list[str]:
    """Apply the migrations not yet applied; return their names. Safe to run concurrently."""
    subs = (tables or TableNames()).substitutions()
    applied: list[str] = []
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _ADVISORY_LOCK_KEY)
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL, checksum text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {
            r["version"]: r["checksum"] for r in await conn.fetch("SELECT * FROM schema_migrations")
        }
        for version, name, template in _migration_files():
            sql = _TEMPLATE_KEY.sub(lambda m: subs.get(m.group(1), m.group(0)), template)
            checksum = hashlib.sha256(template.encode()).hexdigest()
            if version in done:
                if done[version] not in {checksum, *_EARLIER_CHECKSUMS.get(version, ())}:
                    raise RuntimeError(
                        f"migration {name} changed after it was applied; add a new one instead"
                    )
                continue
            await conn.execute(sql)
            await conn.execute(
                "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)",
                version,
                name,
                checksum,
            )
            applied.append(name)
            log.info("applied migration %s", name)
        for index in await ensure_indexes(conn, tables or TableNames()):
            if index.state == "created":
                log.info("created index %s on %s (%s)", index.index, index.table, index.column)
    return applied


@dataclass(frozen=True, slots=True)
class MigrationStatus:
    """One migration file and when it was applied (``None``: pending)."""

    version: int
    name: str
    applied_at: object | None


async def migration_status(conn: asyncpg.Connection) -> list[MigrationStatus]:
    """Every migration this package ships, applied or pending (reads only)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    done: dict[int, object] = {}
    if exists:
        rows = await conn.fetch("SELECT version, applied_at FROM schema_migrations")
        done = {r["version"]: r["applied_at"] for r in rows}
    return [
        MigrationStatus(version, name, done.get(version)) for version, name, _ in _migration_files()
    ]
