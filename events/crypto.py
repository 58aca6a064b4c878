"""Envelope encryption of user data, with one data key per execution (crypto-shredding).

Each scope (an execution id, or ``namespace:<name>`` for shared variables) has its own
random AES-256 data key. The key ring's active master key wraps it, and the wrapped key
is stored in PostgreSQL (``data_keys``), never on the log. User data is compressed
first, then sealed::

    b"\\xffOE" | version (1) | scope length (u16, big-endian) | scope (UTF-8)
    | nonce (12) | AES-256-GCM ciphertext + tag

Everything before the nonce is the associated data, so sealed bytes cannot be moved to
another execution unnoticed. The leading ``0xFF`` is never valid JSON nor a zstd frame,
so sealed and plain bytes tell themselves apart and data written with encryption off
still reads with it on. The fold never opens sealed bytes: it keeps them as the opaque
marker ``{"$sealed": {"encoding", "data"}}`` (base64), which every read model and
snapshot holds as it is. Deleting a scope's data key makes all of it unreadable
everywhere at once; reading it then raises :class:`UserDataErased`.
"""

from __future__ import annotations

import base64
import binascii
import os
import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from orchestrator.events.errors import UserDataError, error_fields
from orchestrator.events.keys import KEY_BYTES, KeyRing

MAGIC = b"\xffOE\x01"
SEALED_MARKER = "$sealed"
NAMESPACE_SCOPE = "namespace:"
_SCOPE_LEN = struct.Struct(">H")
_NONCE_BYTES = 12
_WRAP_AAD = b"orchestrator-data-key:"


@error_fields("the data of {scope} was erased (its data key is deleted)")
class UserDataErased(UserDataError):
    """User data whose data key was deleted (an erasure request): it is gone for good."""

    scope: str


KeyLookup = Callable[[str], bytes]
"""A scope's unwrapped data key; raises :class:`UserDataErased` or ``UserDataError``."""


class DataKeySource(Protocol):
    """Where the data keys live (``projections.datakeys`` keeps them in PostgreSQL)."""

    async def key_for_write(self, scope: str) -> bytes:
        """The scope's data key, created (and stored wrapped) on first use."""
        ...

    async def key_for_read(self, scope: str) -> bytes:
        """The scope's data key; :class:`UserDataErased` if it was deleted."""
        ...

    async def lookup(self, scopes: Iterable[str]) -> KeyLookup:
        """A synchronous lookup over ``scopes`` read now (decoding runs off the loop); a
        scope whose key cannot be read raises its error only when it is used."""
        ...


def namespace_scope(namespace: str) -> str:
    """The data-key scope of a shared-state namespace."""
    return NAMESPACE_SCOPE + namespace


@dataclass(frozen=True, slots=True)
class Sealer:
    """Seals bodies of one scope with its data key (what the write path holds)."""

    scope: str
    key: bytes = field(repr=False)

    def seal(self, body: bytes) -> bytes:
        scope = self.scope.encode()
        header = MAGIC + _SCOPE_LEN.pack(len(scope)) + scope
        nonce = os.urandom(_NONCE_BYTES)
        return header + nonce + AESGCM(self.key).encrypt(nonce, body, header)


def is_sealed(body: bytes) -> bool:
    """Whether ``body`` is sealed (plain JSON and zstd frames never start this way)."""
    return body[:4] == MAGIC


def _split(body: bytes) -> tuple[str, bytes, bytes, bytes]:
    """(scope, header, nonce, ciphertext) of sealed bytes; ``UserDataError`` if malformed."""
    start = len(MAGIC) + _SCOPE_LEN.size
    if len(body) < start:
        raise UserDataError("sealed user data is truncated")
    (n,) = _SCOPE_LEN.unpack_from(body, len(MAGIC))
    end = start + n
    if len(body) < end + _NONCE_BYTES + 16:
        raise UserDataError("sealed user data is truncated")
    try:
        scope = body[start:end].decode()
    except UnicodeDecodeError:
        raise UserDataError("sealed user data names no valid scope") from None
    return scope, body[:end], body[end : end + _NONCE_BYTES], body[end + _NONCE_BYTES :]


def sealed_scope(body: bytes) -> str:
    """The scope (execution or namespace) whose data key sealed ``body``."""
    return _split(body)[0]


def unseal(body: bytes, keys: KeyLookup | None) -> bytes:
    """The plain bytes; ``UserDataErased`` if the key is gone, ``UserDataError`` if no
    key source was given or the bytes were tampered with."""
    scope, header, nonce, ciphertext = _split(body)
    if keys is None:
        raise UserDataError(f"user data of {scope} is encrypted and no data keys are configured")
    try:
        return AESGCM(keys(scope)).decrypt(nonce, ciphertext, header)
    except InvalidTag:
        raise UserDataError(f"user data of {scope} failed authentication") from None


def sealed_marker(encoding: str, body: bytes) -> dict[str, Any]:
    """The opaque marker the fold keeps for sealed inline bytes."""
    return {SEALED_MARKER: {"encoding": encoding, "data": base64.b64encode(body).decode()}}


def marker_parts(value: Any) -> tuple[str, bytes] | None:
    """(encoding, sealed bytes) of a sealed marker, or ``None`` if ``value`` is not one."""
    if not (isinstance(value, dict) and len(value) == 1 and SEALED_MARKER in value):
        return None
    inner = value[SEALED_MARKER]
    try:
        return str(inner["encoding"]), base64.b64decode(inner["data"], validate=True)
    except (KeyError, TypeError, binascii.Error) as exc:
        raise UserDataError(f"sealed marker is malformed: {exc}") from None


def marker_scope(value: Any) -> str | None:
    """The scope of a sealed marker (or of a blob marker naming one), else ``None``."""
    parts = marker_parts(value)
    return None if parts is None else sealed_scope(parts[1])


# --- data keys, wrapped by the master key ring ----------------------------------------


def new_data_key() -> bytes:
    """A fresh random AES-256 data key."""
    return os.urandom(KEY_BYTES)


def wrap_key(ring: KeyRing, scope: str, data_key: bytes) -> tuple[str, bytes]:
    """(master key id, nonce + wrapped key): the data key under the ring's active key."""
    nonce = os.urandom(_NONCE_BYTES)
    master = ring.keys[ring.active]
    return ring.active, nonce + AESGCM(master).encrypt(nonce, data_key, _WRAP_AAD + scope.encode())


def unwrap_key(ring: KeyRing, master_key_id: str, wrapped: bytes, scope: str) -> bytes:
    """The data key; ``UserDataError`` naming the master key id if the ring lacks it."""
    master = ring.key(master_key_id)
    if master is None:
        raise UserDataError(
            f"the data key of {scope} is wrapped by master key {master_key_id!r}, "
            "which is not in ORCHESTRATOR_SNAPSHOT_KEYS"
        )
    nonce, body = wrapped[:_NONCE_BYTES], wrapped[_NONCE_BYTES:]
    try:
        return AESGCM(master).decrypt(nonce, body, _WRAP_AAD + scope.encode())
    except InvalidTag:
        raise UserDataError(f"the data key of {scope} failed authentication") from None
