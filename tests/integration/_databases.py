"""Fresh PostgreSQL databases on the session's server, one per test or module.

Kept apart from the other helpers (light imports) because conftest.py builds its
database fixtures on it and `_state_stack` opens one outside any fixture.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from orchestrator.devstack import fresh_database as fresh_database  # the tests' one way

MakeDatabase = Callable[..., Awaitable[str]]
"""The `make_database` fixture: `await make_database(migrated=True)` -> a new DSN."""


def database_prefix(name: str) -> str:
    """A database-name prefix from a test or module name (PostgreSQL names stop at 63)."""
    return re.sub(r"[^a-z0-9_]+", "_", name.lower()).strip("_")[:40] or "test"
