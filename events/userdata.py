"""Opaque user data: task inputs and outputs, context, checkpoint data, variable values.

The system never looks inside user data. It travels as JSON bytes, compressed above
``compress_threshold`` with the configured algorithm (``events.compression``: zstd,
gzip, lz4 or snappy, named in the payload so any setting reads any other; encoding
``json_zstd`` means "a compressed payload", a name kept for the schema's sake); above
``claim_check_threshold`` the bytes go to a blob store and the event carries only a
:class:`BlobRef` (uri, sha256, size), so Kafka messages stay small. Reading a
reference back verifies the sha256. With encryption on, the (compressed) bytes are
sealed with the execution's data key before they are inlined or stored as a blob
(``events.crypto``: compress, then encrypt; open, then decompress).

``exclude_fields`` (the seed's ``compression.selective.exclude_fields``): those
top-level keys of a mapping stay outside the compressed part, as plain JSON at the
front of the payload (readable without inflating anything, and not spent CPU on);
the rest is compressed when it alone is above the threshold.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from orchestrator.events.compression import (
    Algorithm,
    CompressionError,
    inspect,
    pack,
    unpack,
)
from orchestrator.events.crypto import (
    KeyLookup,
    Sealer,
    is_sealed,
    marker_parts,
    sealed_marker,
    unseal,
)
from orchestrator.events.delta import apply_delta, delta_size, is_delta, make_delta
from orchestrator.events.errors import UserDataError
from orchestrator.events.fastjson import fast_dumps

CEILING_USER_DATA_BYTES = 1024 * 1024 * 1024
"""No user-data value decodes to more than this, whatever the limits say (the fold's
own bound; the codec checks the configured, lower limit when it reads a record)."""

Encoding = Literal["json", "json_zstd"]

DEFAULT_COMPRESS_THRESHOLD = 1024
DEFAULT_CLAIM_CHECK_THRESHOLD = 256 * 1024
BLOB_MARKER = "$blob"
BLOB_URI_PATTERN = r"blobs/[0-9a-f]{2}/([0-9a-f]{64})"
"""A blob URI's content address (its sha256), wherever the URI appears as text."""


@dataclass(frozen=True, slots=True)
class BlobRef:
    """Where claim-checked user data lives, and how to check it came back intact."""

    uri: str
    sha256: str
    size: int


@dataclass(frozen=True, slots=True)
class UserData:
    """User data as it travels in an event: inline bytes or a blob reference."""

    encoding: Encoding
    inline: bytes | None = None
    ref: BlobRef | None = None


class BlobStore(Protocol):
    """Where claim-checked user data is kept (filesystem or S3; see ``snapshots``)."""

    def put_blob(self, key: str, data: bytes) -> str:
        """Store ``data`` under ``key``; return its URI."""
        ...

    def get_blob(self, uri: str) -> bytes:
        """Read back the bytes stored at ``uri``."""
        ...


def _json_bytes(value: Any) -> bytes:
    """Sorted, compact JSON: the value ``json.dumps(sort_keys=True, default=str)`` gives,
    which readers have parsed since the first release (orjson's text where it is the
    same value: ``events.fastjson``)."""
    fast = fast_dumps(value, sort_keys=True)
    if fast is not None:
        return fast
    try:
        return json.dumps(value, separators=(",", ":"), sort_keys=True, default=str).encode()
    except (TypeError, ValueError) as exc:
        raise UserDataError(f"user data is not JSON-serialisable: {exc}") from exc


def encode_user_data(
    value: Any,
    *,
    compress_threshold: int = DEFAULT_COMPRESS_THRESHOLD,
    claim_check_threshold: int = DEFAULT_CLAIM_CHECK_THRESHOLD,
    blob_store: BlobStore | None = None,
    compression_level: int = 3,
    algorithm: Algorithm = "zstd",
    exclude_fields: tuple[str, ...] = (),
    sealer: Sealer | None = None,
    raw: bytes | None = None,
) -> UserData:
    """Encode a JSON-able value for an event, compressing and claim-checking by size;
    sealed with ``sealer`` (the execution's data key) after compression. ``raw``: the
    value's :func:`json_bytes`, when the caller already made them (not dumped twice)."""
    if raw is None:
        raw = _json_bytes(value)
    encoding: Encoding = "json"
    body = raw
    kept = _excluded(value, exclude_fields)
    if kept is not None:
        rest = _json_bytes({k: v for k, v in value.items() if k not in kept})
        if len(rest) > compress_threshold:
            body = _pack(algorithm, rest, compression_level, _json_bytes(kept))
            encoding = "json_zstd"
    elif len(raw) > compress_threshold:
        body = _pack(algorithm, raw, compression_level)
        encoding = "json_zstd"
    return _stored(body, encoding, sealer, claim_check_threshold, blob_store)


def _stored(
    body: bytes,
    encoding: Encoding,
    sealer: Sealer | None,
    claim_check_threshold: int,
    blob_store: BlobStore | None,
) -> UserData:
    """``body`` sealed (encryption on), then inline or claim-checked by size."""
    if sealer is not None:
        body = sealer.seal(body)
    if len(body) > claim_check_threshold:
        if blob_store is None:
            raise UserDataError(
                f"user data of {len(body)} bytes exceeds the claim-check threshold "
                f"({claim_check_threshold}) and no blob store is configured"
            )
        digest = hashlib.sha256(body).hexdigest()
        uri = blob_store.put_blob(f"blobs/{digest[:2]}/{digest}", body)
        return UserData(encoding=encoding, ref=BlobRef(uri=uri, sha256=digest, size=len(body)))
    return UserData(encoding=encoding, inline=body)


def encode_user_data_delta(
    raw: bytes,
    base: bytes,
    *,
    claim_check_threshold: int = DEFAULT_CLAIM_CHECK_THRESHOLD,
    blob_store: BlobStore | None = None,
    compression_level: int = 3,
    sealer: Sealer | None = None,
) -> UserData:
    """``raw`` (JSON bytes) stored as a delta against ``base`` (``events.delta``): the
    delta is compressed by construction, then sealed and claim-checked as any value."""
    try:
        body = make_delta(base, raw, compression_level)
    except CompressionError as exc:
        raise UserDataError(f"user data cannot be stored as a delta: {exc.reason}") from exc
    return _stored(body, "json_zstd", sealer, claim_check_threshold, blob_store)


def json_bytes(value: Any) -> bytes:
    """The JSON bytes :func:`encode_user_data` stores for ``value`` (sorted, compact)."""
    return _json_bytes(value)


def user_data_bytes(
    data: UserData,
    blob_store: BlobStore | None,
    *,
    base: bytes | None = None,
    max_bytes: int | None = None,
    keys: KeyLookup | None = None,
) -> bytes:
    """The JSON bytes ``data`` stands for: fetched (verified), opened, inflated, or a delta
    applied to ``base`` (the JSON bytes of the value it was made against); every size is
    checked against ``max_bytes`` before it is allocated."""
    limit = CEILING_USER_DATA_BYTES if max_bytes is None else max_bytes
    if data.inline is not None:
        body = data.inline
    elif data.ref is not None:
        if blob_store is None:
            raise UserDataError("user data is claim-checked and no blob store is configured")
        body = fetch_verified(data.ref, blob_store)
    else:
        raise UserDataError("user data holds neither bytes nor a reference")
    if is_sealed(body):
        body = unseal(body, keys)
    if is_delta(body):
        if base is None:
            raise UserDataError("user data is a delta and its base is unknown")
        try:
            return apply_delta(base, body, limit)
        except CompressionError as exc:
            raise UserDataError(f"user data is corrupt (delta): {exc.reason}") from exc
    prefix, raw = _inflate(data.encoding, body, limit)
    if prefix:  # split by exclude_fields: whole again, as _json_bytes wrote the value
        return _json_bytes(_merge(_loads(prefix, "json"), _loads(raw, "json"), "json_zstd"))
    return raw


def parse_json(raw: bytes) -> Any:
    """The value of JSON bytes from :func:`user_data_bytes` (``UserDataError`` if not)."""
    return _loads(raw, "json")


def _excluded(value: Any, exclude_fields: tuple[str, ...]) -> dict[str, Any] | None:
    """The top-level entries ``exclude_fields`` keeps out of compression, if any."""
    if not exclude_fields or not isinstance(value, dict):
        return None
    kept = {k: value[k] for k in exclude_fields if k in value}
    return kept or None


def _pack(algorithm: Algorithm, raw: bytes, level: int, prefix: bytes = b"") -> bytes:
    try:
        return pack(algorithm, raw, level, prefix)
    except CompressionError as exc:
        raise UserDataError(f"user data cannot be compressed: {exc.reason}") from exc


def declared_size(body: bytes) -> int:
    """The decompressed size a compressed payload declares (any algorithm), read from its
    header alone; ``UserDataError`` if the payload is corrupt or declares none."""
    try:
        return delta_size(body) if is_delta(body) else inspect(body).total
    except CompressionError as exc:
        raise UserDataError(f"user data is corrupt (json_zstd): {exc.reason}") from exc


def has_nul_escape(raw: bytes) -> bool:
    """Whether JSON text holds ``\\u0000`` (a NUL, which PostgreSQL cannot store)."""
    start = raw.find(b"\\u0000")
    while start >= 0:
        slashes = 0
        while start - slashes - 1 >= 0 and raw[start - slashes - 1] == 0x5C:
            slashes += 1
        if slashes % 2 == 0:
            return True
        start = raw.find(b"\\u0000", start + 1)
    return False


def _decode_body(
    encoding: str, body: bytes, max_bytes: int | None = None, keys: KeyLookup | None = None
) -> Any:
    """The JSON value of ``body``; any problem (corrupt, too big, a NUL) is ``UserDataError``.

    Sealed bytes are opened first (``keys``; ``UserDataErased`` if the key is deleted).

    A compressed payload (any algorithm) is inflated only after its declared size was
    checked against the limit, and into at most that many bytes: a small bomb never
    allocates its claim."""
    limit = CEILING_USER_DATA_BYTES if max_bytes is None else max_bytes
    if is_sealed(body):
        body = unseal(body, keys)
    if is_delta(body):
        raise UserDataError("user data is a delta: it reads only with its base checkpoint")
    prefix, raw = _inflate(encoding, body, limit)
    if prefix:
        return _merge(_loads(prefix, encoding), _loads(raw, encoding), encoding)
    return _loads(raw, encoding)


def _inflate(encoding: str, body: bytes, limit: int) -> tuple[bytes, bytes]:
    """``(prefix, raw)`` of a stored body: a compressed one inflated only after its
    declared size was checked against ``limit``, and into at most that many bytes."""
    if encoding == "json_zstd":
        size = declared_size(body)
        if size > limit:
            raise UserDataError(f"user data of {size} bytes decompressed is over the limit {limit}")
        try:
            return unpack(body, limit)
        except CompressionError as exc:
            raise UserDataError(f"user data is corrupt (json_zstd): {exc.reason}") from exc
    if encoding != "json":
        raise UserDataError(f"user data has an unknown encoding {encoding!r}")
    if len(body) > limit:
        raise UserDataError(f"user data of {len(body)} bytes is over the limit {limit}")
    return b"", body


def _loads(raw: bytes, encoding: str) -> Any:
    if has_nul_escape(raw):
        raise UserDataError(f"user data ({encoding}) holds a NUL character (\\u0000)")
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise UserDataError(f"user data is corrupt ({encoding}): {type(exc).__name__}") from exc


def _merge(kept: Any, rest: Any, encoding: str) -> dict[str, Any]:
    """The mapping split by ``exclude_fields``, whole again (keys sorted, as written)."""
    if not isinstance(kept, dict) or not isinstance(rest, dict) or kept.keys() & rest.keys():
        raise UserDataError(f"user data is corrupt ({encoding}): its two parts do not merge")
    return dict(sorted({**kept, **rest}.items()))


NOT_PLAIN: Any = object()
"""What :func:`plain_json` returns for user data that needs :func:`decode_user_data`."""


_parsed = threading.local()


@contextmanager
def parsing_once() -> Iterator[None]:
    """Inside the block (on this thread), :func:`plain_json` parses each user data value
    once and hands the same object back when asked again: the processor's fold reads a
    value into the state and its archive row reads the same value right after, so each
    is parsed once per batch instead of twice. What it returns inside is shared:
    callers must not mutate it (the fold and the archive only read)."""
    previous = getattr(_parsed, "memo", None)
    _parsed.memo = {}
    try:
        yield
    finally:
        _parsed.memo = previous


def plain_json(data: UserData) -> Any:
    """The value of inline plain-JSON user data, parsed without the encoding sniffing
    of :func:`decode_user_data` (the fold's and the archive's hot path); ``NOT_PLAIN``
    for any other, or for what does not parse this way: the full path decodes it,
    errors included. Inside :func:`parsing_once`, each value is parsed once."""
    inline = data.inline
    if inline is None or data.encoding != "json" or b"\\u0000" in inline:
        return NOT_PLAIN
    memo: dict[int, tuple[UserData, Any]] | None = getattr(_parsed, "memo", None)
    if memo is not None:
        hit = memo.get(id(data))
        if hit is not None and hit[0] is data:
            return hit[1]
    try:
        value = json.loads(inline.decode())
    except (ValueError, RecursionError):
        value = NOT_PLAIN
    if memo is not None:
        memo[id(data)] = (data, value)  # keeps ``data`` alive: its id is not reused
    return value


def decode_user_data(
    data: UserData,
    blob_store: BlobStore | None = None,
    *,
    max_bytes: int | None = None,
    keys: KeyLookup | None = None,
) -> Any:
    """The JSON value; a claim-checked value without a blob store comes back as a marker.

    The marker ``{"$blob": {"uri", "sha256", "size", "encoding"}}`` keeps the fold pure
    (no I/O): read models and state hold the reference, and ``load_blob`` fetches it.
    Sealed inline bytes without ``keys`` come back as the ``{"$sealed": ...}`` marker
    (the fold never decrypts); ``resolve_user_data`` opens both kinds.
    """
    if data.inline is not None:
        if keys is None and is_sealed(data.inline):
            return sealed_marker(data.encoding, data.inline)
        return _decode_body(data.encoding, data.inline, max_bytes, keys)
    if data.ref is None:
        return None
    if blob_store is None:
        return {
            BLOB_MARKER: {
                "uri": data.ref.uri,
                "sha256": data.ref.sha256,
                "size": data.ref.size,
                "encoding": data.encoding,
            }
        }
    return _decode_body(data.encoding, fetch_verified(data.ref, blob_store), max_bytes, keys)


def fetch_verified(ref: BlobRef, blob_store: BlobStore) -> bytes:
    """Read a blob and check its sha256 and size; a mismatch is an error, never wrong data."""
    body = blob_store.get_blob(ref.uri)
    digest = hashlib.sha256(body).hexdigest()
    if digest != ref.sha256 or len(body) != ref.size:
        raise UserDataError(
            f"blob {ref.uri} failed verification: sha256 {digest} size {len(body)}, "
            f"expected sha256 {ref.sha256} size {ref.size}"
        )
    return body


def resolve_blob_markers(
    value: Any,
    blob_store: BlobStore | None,
    *,
    max_bytes: int | None = None,
    keys: KeyLookup | None = None,
) -> Any:
    """Replace a top-level marker (as produced by the fold) with the verified value: a
    blob marker (fetched from ``blob_store``) or a sealed marker (opened with ``keys``)."""
    if isinstance(value, dict) and set(value) == {BLOB_MARKER}:
        if blob_store is None:
            raise UserDataError("user data is claim-checked and no blob store is configured")
        marker = value[BLOB_MARKER]
        ref = BlobRef(uri=marker["uri"], sha256=marker["sha256"], size=marker["size"])
        return _decode_body(marker["encoding"], fetch_verified(ref, blob_store), max_bytes, keys)
    parts = marker_parts(value)
    if parts is not None:
        return _decode_body(parts[0], parts[1], max_bytes, keys)
    return value
