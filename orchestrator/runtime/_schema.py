"""The runtime's own tables: live nodes (with the pipelines they can run) and the
supervisor's recovery assignments.

Created idempotently at startup under an advisory lock (``CREATE TABLE IF NOT EXISTS``
alone races when two nodes start together). They hold coordination data only, no
state: dropping them loses nothing the log does not have.
"""

from __future__ import annotations

import asyncpg

_LOCK_KEY = 0x6F72_6368_7275  # "orchru": distinct from the migrations' lock
_DDL = """
CREATE TABLE IF NOT EXISTS runtime_nodes (
    node_id      text PRIMARY KEY,
    pipelines    text[] NOT NULL DEFAULT '{}',
    active       integer NOT NULL DEFAULT 0,
    healthy      boolean NOT NULL DEFAULT true,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS recovery_assignments (
    execution_id  text PRIMARY KEY,
    pipeline_id   text NOT NULL,
    node_id       text NOT NULL,
    reason        text NOT NULL,
    assigned_by   text NOT NULL,
    leader_epoch  bigint NOT NULL,
    assigned_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS recovery_assignments_node_id ON recovery_assignments (node_id);
ALTER TABLE runtime_nodes ADD COLUMN IF NOT EXISTS recovering integer NOT NULL DEFAULT 0;
"""


async def ensure_runtime_tables(pool: asyncpg.Pool) -> None:
    """Create ``runtime_nodes`` and ``recovery_assignments`` if missing."""
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _LOCK_KEY)
        await conn.execute(_DDL)
