"""The applied event ids of a snapshot, in their own section read only when needed.

A long execution's snapshot holds one event id per applied sequence (100,000 ids are
~3.7 MB of text), which the fold needs only when a record re-delivered from before
the snapshot meets it. Format 2 of the snapshot object keeps them after the body::

    b"OIDS" | base (u64) | count (u32) | raw size (u32) | payload size (u32)
    | compression (u8) | nonce (12 bytes) | CRC-32 of all before it and the payload (u32)
    | payload (the ids, one per line, compressed, then AES-GCM sealed if encrypted)

Decoding checks the section at once (its CRC-32, or the AES-GCM tag with the object's
header and this section's fields as associated data), so a damaged section makes the
snapshot unusable, as a damaged body does; the ids themselves are decompressed and
split only when the fold first asks for one (``events.state.LazyIds``).
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from orchestrator.events import CompressionError, decompress
from orchestrator.events.state import AppliedIds, ExecutionState, LazyIds
from orchestrator.snapshots.errors import SnapshotCorrupt

logger = logging.getLogger(__name__)

MAGIC = b"OIDS"
_META = struct.Struct(">4sQIIIB12s")
_CRC = struct.Struct(">I")
SIZE = _META.size + _CRC.size
_KINDS = ("none", "zstd", "gzip", "lz4", "snappy")
_NO_NONCE = bytes(12)
_MAX_RAW = 2**32 - 1

Compress = Callable[[bytes], tuple[str, bytes]]


def snapshot_ids(state: ExecutionState) -> tuple[int, list[str]]:
    """``(base, ids)`` the snapshot keeps: every id up to the state's last sequence, or
    none (``(last_sequence, [])``) when the state does not know them all."""
    base, ids = state.applied.known_ids()
    if not ids or base + len(ids) != state.last_sequence:
        return state.last_sequence, []
    if any(not i or "\n" in i for i in ids):  # not joinable: leave them unknown
        return state.last_sequence, []
    return base, ids


def encode_section(
    state: ExecutionState,
    compress: Compress | None,
    seal: tuple[bytes, bytes] | None,
) -> bytes:
    """The ids section of ``state``; ``seal`` is ``(AES key, associated data)``."""
    base, ids = snapshot_ids(state)
    raw = "\n".join(ids).encode()
    kind, packed = ("none", raw) if compress is None else compress(raw)
    nonce = _NO_NONCE
    if seal is not None:
        nonce = os.urandom(12)
        meta = _META.pack(
            MAGIC, base, len(ids), len(raw), len(packed) + 16, _KINDS.index(kind), nonce
        )
        packed = AESGCM(seal[0]).encrypt(nonce, packed, seal[1] + meta)
    else:
        meta = _META.pack(MAGIC, base, len(ids), len(raw), len(packed), _KINDS.index(kind), nonce)
    return meta + _CRC.pack(zlib.crc32(packed, zlib.crc32(meta))) + packed


def attach_section(
    state: ExecutionState,
    section: memoryview,
    key: bytes | None,
    aad: bytes,
    object_key: str,
) -> ExecutionState:
    """``state`` with the ids of ``section`` as a lazy head; the section is checked
    now (layout, CRC-32, AES-GCM tag), decompressed and split only when needed."""
    if len(section) < SIZE:
        raise SnapshotCorrupt(object_key, f"ids section truncated ({len(section)} bytes)")
    meta = section[: _META.size]
    magic, base, count, raw_size, size, kind, nonce = _META.unpack(meta)
    (crc,) = _CRC.unpack_from(section, _META.size)
    payload = section[SIZE:]
    if magic != MAGIC or kind >= len(_KINDS):
        raise SnapshotCorrupt(object_key, "ids section: bad magic or compression")
    if len(payload) != size:
        problem = "truncated" if len(payload) < size else "has trailing bytes"
        raise SnapshotCorrupt(object_key, f"ids section {problem}: {len(payload)} of {size}")
    if zlib.crc32(payload, zlib.crc32(meta)) != crc:
        raise SnapshotCorrupt(object_key, "ids section checksum (CRC-32) mismatch")
    if base + count != state.last_sequence:
        raise SnapshotCorrupt(object_key, "ids section does not end at the state's sequence")
    packed: bytes | memoryview = payload
    if key is not None:
        try:
            packed = AESGCM(key).decrypt(nonce, bytes(payload), aad + bytes(meta))
        except InvalidTag:
            raise SnapshotCorrupt(object_key, "ids section authentication failed") from None
    if count == 0:
        return state
    load = _loader(bytes(packed), _KINDS[kind], raw_size, count, object_key)
    # The state was decoded a moment ago and is not shared yet: set its ids in place.
    object.__setattr__(state, "applied", AppliedIds.lazy(base, LazyIds(count, load)))
    return state


def _loader(
    packed: bytes, kind: str, raw_size: int, count: int, object_key: str
) -> Callable[[], list[str] | None]:
    def load() -> list[str] | None:
        try:
            raw = packed
            if kind != "none":
                raw = decompress(kind, packed, raw_size, _MAX_RAW)  # type: ignore[arg-type]
            ids = raw.decode().split("\n")
        except (CompressionError, UnicodeDecodeError) as exc:
            logger.warning("snapshot %s: its event ids do not decode: %s", object_key, exc)
            return None
        if len(ids) != count:
            logger.warning("snapshot %s: %s event ids, %s declared", object_key, len(ids), count)
            return None
        return ids

    return load
