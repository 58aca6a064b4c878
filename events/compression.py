"""One compression codec for everything we store: user data, blobs, snapshots, files.

The seed's ``compression`` block picks the algorithm (zstd, gzip, lz4, snappy), the
``level`` and ``selective.min_size``; cramjam implements all four, each in its standard
framed format (a gzip member, an LZ4 frame, a snappy stream, a zstd frame), so a blob or
a file can also be read with the usual command-line tools.

The algorithm travels with the bytes, so data written under one setting reads under any
other. A *payload* (:func:`pack`) is either

- a bare zstd frame that declares its content size (``28 B5 2F FD``...): what zstd
  writes, byte for byte what this product wrote before it had other algorithms, so
  older readers keep reading the default; or
- a tagged payload: ``00 'O' 'C'`` | version (1) | algorithm id (1 byte) | the
  decompressed size (u32, big-endian) | the uncompressed prefix's length (u32) | the
  uncompressed prefix | the compressed part. The prefix holds what the caller keeps
  out of compression (``selective.exclude_fields``); it is empty otherwise.

Decompression-bomb defence, the same for every algorithm: the declared size is checked
against the caller's limit *before* anything is allocated, then the data is inflated
into a buffer of exactly that size (``decompress_into``), which fails as soon as the
stream holds more, so a bomb never costs more memory than the limit allows.
"""

from __future__ import annotations

import struct
import threading
from dataclasses import KW_ONLY, dataclass
from typing import Final, Literal, get_args

import cramjam
import zstandard

from orchestrator.events.errors import error_fields

Algorithm = Literal["zstd", "gzip", "lz4", "snappy"]
ALGORITHMS: Final[tuple[Algorithm, ...]] = get_args(Algorithm)
LEVELS: Final[dict[Algorithm, tuple[int, int] | None]] = {
    "zstd": (1, 22),
    "gzip": (1, 9),
    "lz4": None,  # cramjam's LZ4 frame has one speed
    "snappy": None,  # snappy has no levels
}
"""The ``level`` range each algorithm honours; ``None``: the level does not apply."""

ZSTD_MAGIC: Final = b"\x28\xb5\x2f\xfd"
TAG: Final = b"\x00OC"  # NUL first: never the start of JSON, Avro header or a zstd frame
_VERSION: Final = 1
_HEAD = struct.Struct(">3sBBII")  # tag, version, algorithm id, decompressed size, prefix len
_IDS: Final[dict[Algorithm, int]] = {"zstd": 1, "gzip": 2, "lz4": 3, "snappy": 4}
_BY_ID: Final[dict[int, Algorithm]] = {v: k for k, v in _IDS.items()}
MAX_DECLARED: Final = 2**32 - 1


@error_fields("{reason}")
class CompressionError(ValueError):
    """Bytes that do not decompress: corrupt, truncated, or over the caller's limit.

    ``over_limit`` says the data claimed (or produced) more than the limit allowed."""

    reason: str
    _: KW_ONLY
    over_limit: bool = False


def check_level(algorithm: Algorithm, level: int) -> str | None:
    """Why ``level`` cannot be used with ``algorithm``, or ``None``."""
    span = LEVELS[algorithm]
    if span is not None and not span[0] <= level <= span[1]:
        return f"{level} is not in {span[0]}..{span[1]} for {algorithm}"
    return None


_contexts = threading.local()


def _zstd_compressor(level: int) -> zstandard.ZstdCompressor:
    """This thread's zstd context for ``level``: making one costs ~100 µs, more than
    compressing a few KB (cramjam makes one per call); a context is not thread-safe."""
    cache: dict[int, zstandard.ZstdCompressor] | None = getattr(_contexts, "compressors", None)
    if cache is None:
        cache = _contexts.compressors = {}
    found = cache.get(level)
    if found is None:
        found = cache[level] = zstandard.ZstdCompressor(level=level)
    return found


def _zstd_decompressor() -> zstandard.ZstdDecompressor:
    found: zstandard.ZstdDecompressor | None = getattr(_contexts, "decompressor", None)
    if found is None:
        found = _contexts.decompressor = zstandard.ZstdDecompressor()
    return found


def compress(algorithm: Algorithm, raw: bytes, level: int = 3) -> bytes:
    """``raw`` in ``algorithm``'s standard framed format."""
    if algorithm == "zstd":  # the same frame cramjam writes, content size declared
        return _zstd_compressor(level).compress(raw)
    if algorithm == "gzip":
        return bytes(cramjam.gzip.compress(raw, level=min(level, 9)))
    if algorithm == "lz4":
        return bytes(cramjam.lz4.compress(raw))
    if algorithm == "snappy":
        return bytes(cramjam.snappy.compress(raw))
    raise CompressionError(f"unknown compression algorithm {algorithm!r}")


def decompress(algorithm: Algorithm, body: bytes, size: int, limit: int) -> bytes:
    """The ``size`` bytes ``body`` decompresses to; refused before allocating when
    ``size > limit``, and refused when the stream holds more or less than ``size``."""
    if size > limit:
        raise CompressionError(
            f"{size} bytes decompressed is over the limit {limit}", over_limit=True
        )
    if algorithm == "zstd":
        fast = _zstd_exact(body, size)
        if fast is not None:
            return fast
    module = {
        "zstd": cramjam.zstd,
        "gzip": cramjam.gzip,
        "lz4": cramjam.lz4,
        "snappy": cramjam.snappy,
    }.get(algorithm)
    if module is None:
        raise CompressionError(f"unknown compression algorithm {algorithm!r}")
    out = bytearray(size)
    try:
        written = module.decompress_into(body, out)
    except cramjam.DecompressionError as exc:
        more = "whole buffer" in str(exc)
        reason = f"more than the declared {size} bytes" if more else str(exc)
        raise CompressionError(f"{algorithm} data does not decompress: {reason}") from None
    if written != size:
        raise CompressionError(
            f"{algorithm} data decompressed to {written} bytes, {size} were declared"
        )
    return bytes(out)


def _zstd_exact(body: bytes, size: int) -> bytes | None:
    """A frame whose header declares exactly ``size`` bytes, inflated with this thread's
    reused context into a buffer of that size (libzstd refuses a stream holding more;
    bytes after the frame are refused); ``None`` for anything else, which the checked
    path in :func:`decompress` then explains."""
    try:
        if zstandard.frame_content_size(body) != size:
            return None
        out = _zstd_decompressor().decompress(body, allow_extra_data=False)
    except zstandard.ZstdError:
        return None
    return out if len(out) == size else None


def zstd_content_size(frame: bytes) -> int | None:
    """The content size a zstd frame header declares (RFC 8878 §3.1.1.1), or ``None``."""
    if len(frame) < 5 or frame[:4] != ZSTD_MAGIC:
        return None
    fhd = frame[4]
    fcs_flag, single, dict_flag = fhd >> 6, (fhd >> 5) & 1, fhd & 3
    at = 5 + (0 if single else 1) + (0, 1, 2, 4)[dict_flag]
    width = (1 if single else 0, 2, 4, 8)[fcs_flag]
    if width == 0 or len(frame) < at + width:
        return None
    value = int.from_bytes(frame[at : at + width], "little")
    return value + 256 if width == 2 else value


# --- payloads: the algorithm recorded with the bytes ------------------------------------


def pack(algorithm: Algorithm, raw: bytes, level: int = 3, prefix: bytes = b"") -> bytes:
    """A payload holding ``prefix`` as is and ``raw`` compressed, naming its algorithm."""
    if len(raw) > MAX_DECLARED or len(prefix) > MAX_DECLARED:
        raise CompressionError(f"{len(raw)} bytes is too large for one payload")
    body = compress(algorithm, raw, level)
    if algorithm == "zstd" and not prefix:
        return body  # a bare frame: what every earlier release wrote and reads
    return _HEAD.pack(TAG, _VERSION, _IDS[algorithm], len(raw), len(prefix)) + prefix + body


@dataclass(frozen=True, slots=True)
class PayloadInfo:
    """What a payload's header says, read without decompressing anything."""

    algorithm: Algorithm
    size: int
    """Decompressed size of the compressed part."""
    prefix: bytes
    body: bytes

    @property
    def total(self) -> int:
        """Bytes the payload stands for: prefix plus decompressed part."""
        return self.size + len(self.prefix)


def inspect(payload: bytes) -> PayloadInfo:
    """The payload's algorithm, declared size and parts; ``CompressionError`` when corrupt."""
    if payload[:4] == ZSTD_MAGIC:
        size = zstd_content_size(payload)
        if size is None:
            raise CompressionError("zstd frame declares no content size")
        return PayloadInfo("zstd", size, b"", payload)
    if payload[:3] != TAG or len(payload) < _HEAD.size:
        raise CompressionError("not a compressed payload (unknown header)")
    _, version, algorithm_id, size, prefix_len = _HEAD.unpack_from(payload)
    if version != _VERSION:
        raise CompressionError(f"unsupported payload version {version}")
    algorithm = _BY_ID.get(algorithm_id)
    if algorithm is None:
        raise CompressionError(f"unknown compression algorithm id {algorithm_id}")
    end = _HEAD.size + prefix_len
    if len(payload) < end:
        raise CompressionError("payload truncated inside its uncompressed part")
    return PayloadInfo(algorithm, size, payload[_HEAD.size : end], payload[end:])


def unpack(payload: bytes, limit: int) -> tuple[bytes, bytes]:
    """``(prefix, raw)`` of a payload, with everything checked against ``limit`` first."""
    info = inspect(payload)
    if info.total > limit:
        raise CompressionError(
            f"{info.total} bytes decompressed is over the limit {limit}", over_limit=True
        )
    return info.prefix, decompress(info.algorithm, info.body, info.size, limit)


@dataclass(frozen=True, slots=True)
class Compressor:
    """The seed's ``compression`` block as a value: algorithm, level, ``min_size``."""

    algorithm: Algorithm = "zstd"
    level: int = 3
    min_size: int = 1024

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"compression.algorithm {self.algorithm!r} is not one of {ALGORITHMS}")
        problem = check_level(self.algorithm, self.level)
        if problem is not None:
            raise ValueError(f"compression.level {problem}")
        if self.min_size < 0:
            raise ValueError("compression.selective.min_size must be >= 0")

    def wants(self, raw: bytes) -> bool:
        """Whether ``raw`` is large enough to compress (strictly above ``min_size``)."""
        return len(raw) > self.min_size

    def compress(self, raw: bytes) -> bytes:
        """``raw`` in this algorithm's framed format (no payload header)."""
        return compress(self.algorithm, raw, self.level)

    def pack(self, raw: bytes, prefix: bytes = b"") -> bytes:
        """A self-describing payload (see :func:`pack`)."""
        return pack(self.algorithm, raw, self.level, prefix)
