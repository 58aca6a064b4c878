"""Opaque user data: task inputs and outputs, context, checkpoint data, variable values.

The system never looks inside user data. It travels as JSON bytes, zstd-compressed
above ``compress_threshold``; above ``claim_check_threshold`` the bytes go to a blob
store and the event carries only a :class:`BlobRef` (uri, sha256, size), so Kafka
messages stay small. Reading a reference back verifies the sha256.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import zstandard

from orchestrator.events.errors import UserDataError

Encoding = Literal["json", "json_zstd"]

DEFAULT_COMPRESS_THRESHOLD = 1024
DEFAULT_CLAIM_CHECK_THRESHOLD = 256 * 1024
BLOB_MARKER = "$blob"


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
) -> UserData:
    """Encode a JSON-able value for an event, compressing and claim-checking by size."""
    raw = _json_bytes(value)
    encoding: Encoding = "json"
    body = raw
    if len(raw) > compress_threshold:
        body = zstandard.ZstdCompressor(level=compression_level).compress(raw)
        encoding = "json_zstd"
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


def _decode_body(encoding: Encoding, body: bytes) -> Any:
    try:
        raw = zstandard.ZstdDecompressor().decompress(body) if encoding == "json_zstd" else body
        return json.loads(raw)
    except (zstandard.ZstdError, ValueError) as exc:
        raise UserDataError(f"user data is corrupt ({encoding}): {exc}") from exc


def decode_user_data(data: UserData, blob_store: BlobStore | None = None) -> Any:
    """The JSON value; a claim-checked value without a blob store comes back as a marker.

    The marker ``{"$blob": {"uri", "sha256", "size", "encoding"}}`` keeps the fold pure
    (no I/O): read models and state hold the reference, and ``load_blob`` fetches it.
    """
    if data.inline is not None:
        return _decode_body(data.encoding, data.inline)
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
    return _decode_body(data.encoding, fetch_verified(data.ref, blob_store))


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


def resolve_blob_markers(value: Any, blob_store: BlobStore) -> Any:
    """Replace a top-level blob marker (as produced by the fold) with the verified value."""
    if isinstance(value, dict) and set(value) == {BLOB_MARKER}:
        marker = value[BLOB_MARKER]
        ref = BlobRef(uri=marker["uri"], sha256=marker["sha256"], size=marker["size"])
        return _decode_body(marker["encoding"], fetch_verified(ref, blob_store))
    return value
