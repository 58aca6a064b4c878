"""The data keys of user-data encryption, kept wrapped in PostgreSQL (``data_keys``).

One random AES-256 key per scope (an execution, or a shared-state namespace), wrapped
by the key ring's active master key (``events.crypto.wrap_key``) and stored before any
event sealed with it reaches the log. ``erase`` deletes the wrapped key and leaves a
tombstone: from then on every copy of that scope's user data (Kafka, read models,
snapshots, blobs) reads as :class:`UserDataErased`. Rotation: a wrapped key names its
master key, so old keys stay readable while the ring still lists that master key;
``rewrap`` moves every live data key to the active master key.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import asyncpg

from orchestrator.events import (
    KEYS_ENV,
    SEALED_MARKER,
    KeyLookup,
    KeyRing,
    UserDataErased,
    UserDataError,
    marker_scope,
    new_data_key,
    resolve_blob_markers,
    unwrap_key,
    wrap_key,
)


@dataclass(frozen=True, slots=True)
class EraseResult:
    """What ``erase`` found: a live key deleted (``had_key``), or erased before
    (``already``); neither means the scope's data was written unencrypted."""

    scope: str
    had_key: bool
    already: bool


class PostgresDataKeys:
    """:class:`events.crypto.DataKeySource` over the ``data_keys`` table.

    Write keys are cached in the process (a writer seals many values); read keys are
    read from the table every time, so an erasure done elsewhere holds at once.
    """

    def __init__(self, pool: asyncpg.Pool, ring: KeyRing | None) -> None:
        self._pool = pool
        self._ring = ring
        self._write_cache: dict[str, bytes] = {}

    def _need_ring(self) -> KeyRing:
        if self._ring is None:
            raise UserDataError(f"reading or writing data keys needs {KEYS_ENV}")
        return self._ring

    async def key_for_write(self, scope: str) -> bytes:
        cached = self._write_cache.get(scope)
        if cached is not None:
            return cached
        kid, wrapped = wrap_key(self._need_ring(), scope, new_data_key())
        async with self._pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO data_keys (scope, master_key_id, wrapped_key) VALUES ($1, $2, $3)"
                " ON CONFLICT (scope) DO NOTHING",
                scope,
                kid,
                wrapped,
            )
        key = await self.key_for_read(scope)
        self._write_cache[scope] = key
        return key

    async def key_for_read(self, scope: str) -> bytes:
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                "SELECT master_key_id, wrapped_key, erased_at FROM data_keys WHERE scope = $1",
                scope,
            )
        if row is None:
            raise UserDataError(f"no data key exists for {scope}")
        if row["erased_at"] is not None:
            raise UserDataErased(scope)
        return unwrap_key(self._need_ring(), row["master_key_id"], bytes(row["wrapped_key"]), scope)

    async def lookup(self, scopes: Iterable[str]) -> KeyLookup:
        """A synchronous lookup over ``scopes``, read now (decoding runs off the loop).

        A scope whose key cannot be read raises its error when (and only if) it is used,
        so data written without encryption still reads."""
        found: dict[str, bytes | UserDataError] = {}
        for scope in set(scopes):
            try:
                found[scope] = await self.key_for_read(scope)
            except UserDataError as exc:
                found[scope] = exc

        def get(scope: str) -> bytes:
            hit = found.get(scope)
            if hit is None:
                raise UserDataError(f"no data key was loaded for {scope}")
            if isinstance(hit, UserDataError):
                raise hit
            return hit

        return get

    async def open_markers(self, value: Any) -> Any:
        """``value`` (JSON data) with every sealed marker in it opened, wherever it sits.

        A marker whose key is erased becomes ``{"$erased": scope}``; one that cannot be
        opened (its master key is not in the ring) ``{"$undecryptable": reason}``."""
        scopes: set[str] = set()
        _scopes(value, scopes)
        if not scopes:
            return value
        return _open(value, await self.lookup(scopes))

    async def erase(self, scope: str) -> EraseResult:
        """Delete the scope's data key (crypto-shredding); a tombstone stays, so later
        writes under the scope are refused too. A scope without a key (its data was
        written unencrypted, or it does not exist) is left as it is."""
        self._write_cache.pop(scope, None)
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT erased_at FROM data_keys WHERE scope = $1 FOR UPDATE", scope
            )
            if row is not None and row["erased_at"] is not None:
                return EraseResult(scope, had_key=False, already=True)
            if row is None:  # never encrypted (or no such scope): nothing to shred
                return EraseResult(scope, had_key=False, already=False)
            await conn.execute(
                "INSERT INTO data_keys (scope, master_key_id, wrapped_key, erased_at)"
                " VALUES ($1, NULL, NULL, now())"
                " ON CONFLICT (scope) DO UPDATE"
                " SET master_key_id = NULL, wrapped_key = NULL, erased_at = now()",
                scope,
            )
        return EraseResult(scope, had_key=True, already=False)

    async def is_erased(self, scope: str) -> bool:
        async with self._pool.acquire() as conn:
            value = await conn.fetchval("SELECT erased_at FROM data_keys WHERE scope = $1", scope)
        return value is not None

    async def rewrap(self) -> int:
        """Wrap every live data key with the active master key; how many were rewrapped."""
        ring = self._need_ring()
        moved = 0
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT scope, master_key_id, wrapped_key FROM data_keys"
                " WHERE wrapped_key IS NOT NULL AND master_key_id <> $1 FOR UPDATE",
                ring.active,
            )
            for row in rows:
                scope = row["scope"]
                key = unwrap_key(ring, row["master_key_id"], bytes(row["wrapped_key"]), scope)
                kid, wrapped = wrap_key(ring, scope, key)
                await conn.execute(
                    "UPDATE data_keys SET master_key_id = $2, wrapped_key = $3 WHERE scope = $1",
                    row["scope"],
                    kid,
                    wrapped,
                )
                moved += 1
        return moved


def _is_marker(value: Any) -> bool:
    return isinstance(value, dict) and len(value) == 1 and SEALED_MARKER in value


def _scopes(value: Any, out: set[str]) -> None:
    if _is_marker(value):
        try:
            scope = marker_scope(value)
        except UserDataError:
            return
        if scope is not None:
            out.add(scope)
    elif isinstance(value, dict):
        for item in value.values():
            _scopes(item, out)
    elif isinstance(value, list):
        for item in value:
            _scopes(item, out)


def _open(value: Any, keys: KeyLookup) -> Any:
    if _is_marker(value):
        try:
            return resolve_blob_markers(value, None, keys=keys)
        except UserDataErased as exc:
            return {"$erased": exc.scope}
        except UserDataError as exc:
            return {"$undecryptable": str(exc)}
    if isinstance(value, dict):
        return {k: _open(v, keys) for k, v in value.items()}
    if isinstance(value, list):
        return [_open(v, keys) for v in value]
    return value
