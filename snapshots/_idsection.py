"""The applied event ids of a snapshot, in their own section read only when needed.

A snapshot holds the event ids of its last :data:`KEPT_IDS` applied sequences (10,000
ids are ~370 KB of text), which the fold needs only when a record re-delivered from
before the snapshot meets it. Format 2 of the snapshot object keeps them between the
header and the body::

    b"OIDS" | base (u64) | count (u32) | raw size (u32) | payload size (u32)
    | compression (u8) | nonce (12 bytes) | CRC-32 of all before it and the payload (u32)
    | payload (the ids, one per line, compressed, then AES-GCM sealed if encrypted)

Decoding checks only the section's layout, so a restore costs the same whatever the
history's length; its CRC-32 (or AES-GCM tag, with the object's header and this
section's fields as associated data), decompression and split wait until the fold
first asks for an id (``events.state.LazyIds``). A section damaged then leaves the
ids unknown: the states are still the full fold's, only a forged record before the
snapshot is labelled a duplicate instead of rejected.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from orchestrator.events import AppliedIds, CompressionError, ExecutionState, LazyIds, decompress
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


KEPT_IDS = 10_000
"""The ids a snapshot keeps: those of its last 10,000 sequences (~200 KB compressed).

Why a window: with every id, a snapshot grew by ~20 bytes per event of the history
(2 MB at 100,000 events), and every cold restore read, and the snapshotter wrote, all of
it. The fold asks for an id only when a record claims a sequence already applied (a
re-delivery, a zombie's write): those come right after their sequence, well inside the
window. An older one folded on a restored snapshot is judged a duplicate (the state is
the same either way), as when the section is unreadable; the processor judges from the
archive, which holds every id."""


def snapshot_ids(state: ExecutionState, keep: int = KEPT_IDS) -> tuple[int, list[str]]:
    """``(base, ids)`` the snapshot keeps: the ids of the last ``keep`` sequences up to
    the state's last one, or none (``(last_sequence, [])``) when the state does not know
    them all."""
    base, ids = state.applied.tail(keep)
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


def section_size(rest: memoryview, object_key: str) -> int:
    """How many bytes of ``rest`` (what follows the header's CRC) the section takes."""
    if len(rest) < SIZE:
        raise SnapshotCorrupt(object_key, f"ids section truncated ({len(rest)} bytes)")
    magic, _base, _count, _raw, size, kind, _nonce = _META.unpack(rest[: _META.size])
    if magic != MAGIC or kind >= len(_KINDS):
        raise SnapshotCorrupt(object_key, "ids section: bad magic or compression")
    if len(rest) < SIZE + size:
        raise SnapshotCorrupt(object_key, f"ids section truncated ({len(rest)} bytes)")
    return SIZE + int(size)


def attach_section(
    state: ExecutionState,
    section: memoryview,
    key: bytes | None,
    aad: bytes,
    object_key: str,
) -> ExecutionState:
    """``state`` with the ids of ``section`` as a lazy head. Only its layout is checked
    now; its CRC-32 (or AES-GCM tag), decompression and split wait until the fold needs
    an id, and a section that fails them then leaves the ids unknown (logged): the
    fold's states stay those of the full fold, a forged record before the snapshot is
    then judged a duplicate rather than rejected."""
    _magic, base, count, raw_size, _size, kind, _nonce = _META.unpack(section[: _META.size])
    if base + count != state.last_sequence:
        raise SnapshotCorrupt(object_key, "ids section does not end at the state's sequence")
    if count == 0:
        return state
    load = _loader(section, key, aad, _KINDS[kind], raw_size, count, object_key)
    # The state was decoded a moment ago and is not shared yet: set its ids in place.
    object.__setattr__(state, "applied", AppliedIds.lazy(base, LazyIds(count, load)))
    return state


def _loader(
    section: memoryview,
    key: bytes | None,
    aad: bytes,
    kind: str,
    raw_size: int,
    count: int,
    object_key: str,
) -> Callable[[], list[str] | None]:
    def load() -> list[str] | None:
        meta, payload = section[: _META.size], section[SIZE:]
        (crc,) = _CRC.unpack_from(section, _META.size)
        try:
            if zlib.crc32(payload, zlib.crc32(meta)) != crc:
                raise ValueError("checksum (CRC-32) mismatch")
            packed = bytes(payload)
            if key is not None:
                packed = AESGCM(key).decrypt(_nonce_of(meta), packed, aad + bytes(meta))
            raw = packed
            if kind != "none":
                raw = decompress(kind, packed, raw_size, _MAX_RAW)  # type: ignore[arg-type]
            ids = raw.decode().split("\n")
        except (ValueError, InvalidTag, CompressionError, UnicodeDecodeError) as exc:
            logger.warning("snapshot %s: its event ids are unusable (%s); unknown", object_key, exc)
            return None
        if len(ids) != count:
            logger.warning("snapshot %s: %s event ids, %s declared", object_key, len(ids), count)
            return None
        return ids

    return load


def _nonce_of(meta: memoryview) -> bytes:
    return bytes(_META.unpack(meta)[6])
