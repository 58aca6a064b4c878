"""Encrypted user data in CLI output, opened with the key ring from the environment."""

from __future__ import annotations

from typing import Any

from orchestrator._cli._connect import pg_pool
from orchestrator.events import KeyRing
from orchestrator.projections import PostgresDataKeys, close_pool


async def open_sealed(dsn: str, value: Any) -> Any:
    """``value`` (JSON data) with its sealed markers opened; an erased execution's as
    ``{"$erased": id}``, one that needs a key ring not set as ``{"$undecryptable": why}``."""
    pool = await pg_pool(dsn, max_size=1)
    try:
        return await PostgresDataKeys(pool, KeyRing.from_env()).open_markers(value)
    finally:
        await close_pool(pool)
