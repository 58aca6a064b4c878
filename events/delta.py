"""Binary deltas between two versions of user data: zstd's "patch from" mode.

Why zstd: a checkpoint that grows (a chat history) differs from the previous one by a
few hundred bytes, yet stored whole each time it makes storage grow quadratically.
zstd compressing the new bytes with the previous bytes as a raw-content dictionary
(what ``zstd --patch-from`` does) finds every unchanged run however the JSON moved,
and compresses what is new in the same pass: a ~1 KB message appended to a 1 MB
history costs ~400 bytes, and ~10 ms (less than compressing the whole value). It is
python-zstandard's documented dictionary API; nothing here re-implements a diff.

A delta is a *tagged* payload (``events.compression``'s header, algorithm id
:data:`DELTA_ID`), so a reader that does not know deltas refuses it as an unknown
algorithm instead of decoding garbage, and its header declares the size it
decompresses to, checked against the caller's limit before anything is allocated.
The zstd frame carries a content checksum: applied to any other base, it fails.
"""

from __future__ import annotations

import struct
from typing import Final

import zstandard

from orchestrator.events.compression import MAX_DECLARED, TAG, CompressionError

DELTA_ID: Final = 0x40
"""The algorithm id of a delta in the tagged payload header (never a compressor's)."""
_VERSION: Final = 1
_HEAD = struct.Struct(">3sBBII")  # the tagged payload header: tag, version, id, size, 0
MAX_BASE_BYTES: Final = 64 * 1024 * 1024
"""Above this a value is stored whole: the writer would hold it, and zstd index it."""


def _window_log(base: int, target: int) -> int:
    """A window that reaches from the end of ``target`` back to the start of ``base``."""
    return max(10, min(zstandard.WINDOWLOG_MAX, (base + target).bit_length()))


def make_delta(base: bytes, target: bytes, level: int = 3) -> bytes:
    """``target`` as a delta against ``base`` (both at most :data:`MAX_BASE_BYTES`)."""
    if len(base) > MAX_BASE_BYTES or len(target) > MAX_DECLARED:
        raise CompressionError("value too large for a delta")
    params = zstandard.ZstdCompressionParameters.from_level(
        max(1, min(level, 19)),
        window_log=_window_log(len(base), len(target)),
        write_checksum=True,
        write_content_size=True,
    )
    dictionary = zstandard.ZstdCompressionDict(base, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    frame = zstandard.ZstdCompressor(dict_data=dictionary, compression_params=params).compress(
        target
    )
    return _HEAD.pack(TAG, _VERSION, DELTA_ID, len(target), 0) + frame


def is_delta(payload: bytes) -> bool:
    """Whether ``payload`` is a delta (its header names :data:`DELTA_ID`)."""
    return len(payload) >= _HEAD.size and payload[:3] == TAG and payload[4] == DELTA_ID


def delta_size(payload: bytes) -> int:
    """The size ``payload`` declares it applies to; ``CompressionError`` if not a delta."""
    if not is_delta(payload):
        raise CompressionError("not a delta")
    _, version, _, size, _ = _HEAD.unpack_from(payload)
    if version != _VERSION:
        raise CompressionError(f"unsupported delta version {version}")
    return int(size)


def apply_delta(base: bytes, payload: bytes, limit: int) -> bytes:
    """The bytes ``payload`` encodes against ``base``; refused before allocating when it
    declares more than ``limit``, and refused when it does not fit ``base`` exactly."""
    size = delta_size(payload)
    if size > limit:
        raise CompressionError(
            f"{size} bytes decompressed is over the limit {limit}", over_limit=True
        )
    frame = payload[_HEAD.size :]
    try:
        declared = zstandard.frame_content_size(frame)
    except zstandard.ZstdError:
        declared = -1
    if declared != size:
        raise CompressionError(f"delta frame declares {declared} bytes, its header {size}")
    dictionary = zstandard.ZstdCompressionDict(base, dict_type=zstandard.DICT_TYPE_RAWCONTENT)
    try:
        out = zstandard.ZstdDecompressor(
            dict_data=dictionary, max_window_size=1 << _window_log(len(base), size)
        ).decompress(frame, max_output_size=size)
    except zstandard.ZstdError as exc:
        raise CompressionError(f"delta does not apply to its base: {exc}") from None
    if len(out) != size:
        raise CompressionError(f"delta produced {len(out)} bytes, {size} were declared")
    return out
