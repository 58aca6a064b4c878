"""The snapshot codec: an execution state <-> the bytes of a snapshot object.

Composed like Temporal's DataConverter from small frozen steps: an Avro converter
(state <-> Avro bytes), optional compression (the seed's ``compression`` block: zstd,
gzip, lz4 or snappy through ``events.compression``, only above ``min_size``), optional
AES-256-GCM encryption. The header names the algorithm, so a snapshot written under one
setting reads under any other. The object::

    b"OSNP" | format version (1 byte) | header length (u32, big-endian) | header (Avro)
    | CRC-32 of everything before it (u32) | applied event ids (format 2) | body

The header says what the body is and where it came from (state schema fingerprint,
compression, key id and nonce, execution, sequence, epoch, Kafka position, times,
sizes, SHA-256 of the Avro bytes). Everything before the CRC is the AES-GCM associated
data, so an encrypted snapshot cannot be moved to another execution or position
unnoticed. Anything that does not check out raises :class:`SnapshotCorrupt` naming the
object: restore then uses an older snapshot or replays, never a wrong state.
"""

from __future__ import annotations

import hashlib
import io
import os
import struct
import zlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from fastavro import schemaless_reader, schemaless_writer

from orchestrator.events import (
    CompressionAlgorithm,
    CompressionError,
    Compressor,
    ExecutionState,
    KeyRing,
    Position,
    decompress,
    field_values,
    from_fields,
)
from orchestrator.snapshots._idsection import attach_section, encode_section, section_size
from orchestrator.snapshots._schema import (
    StateSchemas,
    default_state_schemas,
    header_schema,
    record_to_state,
    state_to_record,
)
from orchestrator.snapshots.errors import SnapshotConfigError, SnapshotCorrupt

MAGIC = b"OSNP"
FORMAT_VERSION = 2
"""2: the applied event ids sit between the header and the body in their own section
(``_idsection``); 1 (still read): they are in the body."""
_PREFIX = struct.Struct(">4sBI")  # magic, format version, header length
_CRC = struct.Struct(">I")
_NONCE_BYTES = 12
_TAG_BYTES = 16

Compression = Literal["none", "zstd", "gzip", "lz4", "snappy"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SnapshotHeader:
    """What a snapshot object says about itself (readable without keys)."""

    format_version: int
    schema_fingerprint: int
    compression: Compression
    key_id: str | None
    nonce: bytes | None = field(repr=False)
    execution_id: str
    pipeline_id: str
    sequence: int
    epoch: int
    status: str
    position: Position
    occurred_at: datetime | None
    created_at: datetime
    raw_size: int
    body_size: int
    body_sha256: bytes = field(repr=False)

    def to_record(self) -> dict[str, Any]:
        """The header as the Avro header schema has it (the position in three fields)."""
        record = field_values(self, skip=_NOT_IN_RECORD)
        p = self.position
        return {**record, "topic": p.topic, "partition": p.partition, "offset": p.offset}

    @classmethod
    def from_record(cls, version: int, r: dict[str, Any]) -> SnapshotHeader:
        return from_fields(
            cls,
            r,
            format_version=version,
            position=Position(r["topic"], r["partition"], r["offset"]),
            body_sha256=bytes(r["body_sha256"]),
        )


_NOT_IN_RECORD = frozenset({"format_version", "position"})
"""Header fields the Avro record does not hold as such (the version precedes it)."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A decoded snapshot: its header and the execution state it holds."""

    header: SnapshotHeader
    state: ExecutionState


@dataclass(frozen=True, slots=True)
class EncodedSnapshot:
    """The bytes of a snapshot object and its header (sizes for the index)."""

    data: bytes = field(repr=False)
    header: SnapshotHeader

    @property
    def size(self) -> int:
        return len(self.data)


# --- steps ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AvroStateConverter:
    """ExecutionState <-> Avro bytes, written with the current state schema and read
    with whichever known schema (current or released) wrote them."""

    schemas: StateSchemas = field(default_factory=default_state_schemas)

    @property
    def fingerprint(self) -> int:
        return self.schemas.current.fingerprint

    def to_bytes(self, state: ExecutionState, *, with_ids: bool = True) -> bytes:
        out = io.BytesIO()
        record = state_to_record(state, with_ids=with_ids)
        schemaless_writer(out, self.schemas.current.schema, record)
        return out.getvalue()

    def from_bytes(self, data: bytes, fingerprint: int, object_key: str) -> ExecutionState:
        writer = self.schemas.writers.get(fingerprint)
        if writer is None:
            raise SnapshotCorrupt(
                object_key, f"unknown state schema fingerprint 0x{fingerprint & (2**64 - 1):016x}"
            )
        try:
            buf = io.BytesIO(data)
            # Read with the writer's schema alone: record_to_state reads the records of
            # every release, and a resolution step costs as much as the decode itself.
            record = schemaless_reader(buf, writer.schema, None)
            if buf.tell() != len(data):
                raise ValueError(f"{len(data) - buf.tell()} bytes left after the state")
            return record_to_state(record)  # type: ignore[arg-type]
        except (ValueError, TypeError, KeyError, EOFError, IndexError, UnicodeDecodeError) as exc:
            raise SnapshotCorrupt(object_key, f"state does not decode: {exc}") from exc


MAX_SNAPSHOT_BYTES = 4 * 1024**3
"""No snapshot body inflates past this, whatever its header claims (the raw size is
checked before anything is allocated, and the output is bounded by it)."""


@dataclass(frozen=True, slots=True)
class SnapshotCompression:
    """``algorithm`` at ``level``, applied only to bodies larger than ``min_size`` bytes
    (and kept only when it saves space)."""

    level: int = 3
    min_size: int = 1024
    algorithm: CompressionAlgorithm = "zstd"

    def __post_init__(self) -> None:
        try:
            Compressor(self.algorithm, self.level, self.min_size)
        except ValueError as exc:
            key, _, reason = str(exc).partition(" ")
            raise SnapshotConfigError(key, reason) from None

    def compress(self, raw: bytes) -> tuple[Compression, bytes]:
        packer = Compressor(self.algorithm, self.level, self.min_size)
        if not packer.wants(raw):
            return "none", raw
        packed = packer.compress(raw)
        return (self.algorithm, packed) if len(packed) < len(raw) else ("none", raw)


ZstdCompression = SnapshotCompression
"""The name this step had when zstd was the only algorithm."""


def _decompress(kind: Compression, body: bytes, raw_size: int, object_key: str) -> bytes:
    if kind == "none":
        return body
    try:
        return decompress(kind, body, raw_size, MAX_SNAPSHOT_BYTES)
    except CompressionError as exc:
        raise SnapshotCorrupt(object_key, f"body does not decompress: {exc.reason}") from exc


@dataclass(frozen=True, slots=True)
class AesGcmEncryption:
    """AES-256-GCM with the key ring's active key; the header is the associated data."""

    keys: KeyRing

    def encrypt(self, nonce: bytes, plain: bytes, aad: bytes) -> bytes:
        return AESGCM(self.keys.keys[self.keys.active]).encrypt(nonce, plain, aad)


def _decrypt(
    encryption: AesGcmEncryption | None,
    header: SnapshotHeader,
    body: bytes,
    aad: bytes,
    object_key: str,
) -> bytes:
    assert header.key_id is not None
    key = None if encryption is None else encryption.keys.key(header.key_id)
    if key is None:
        raise SnapshotCorrupt(
            object_key, f"encrypted with key {header.key_id!r}, which is not in the key ring"
        )
    if header.nonce is None or len(header.nonce) != _NONCE_BYTES:
        raise SnapshotCorrupt(object_key, "encrypted without a 96-bit nonce")
    try:
        return AESGCM(key).decrypt(header.nonce, body, aad)
    except InvalidTag:
        raise SnapshotCorrupt(
            object_key, f"authentication tag check failed (key {header.key_id!r})"
        ) from None


# --- the codec ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SnapshotCodec:
    """Avro, then optional compression, then optional AES-GCM: encode and check-and-decode."""

    converter: AvroStateConverter = field(default_factory=AvroStateConverter)
    compression: SnapshotCompression | None = field(default_factory=SnapshotCompression)
    encryption: AesGcmEncryption | None = None

    def encode(
        self,
        state: ExecutionState,
        position: Position,
        *,
        occurred_at: datetime | None,
        created_at: datetime | None = None,
    ) -> EncodedSnapshot:
        """The snapshot object of ``state``, whose last folded event sits at ``position``."""
        raw = self.converter.to_bytes(state, with_ids=False)
        kind: Compression = "none"
        body = raw
        if self.compression is not None:
            kind, body = self.compression.compress(raw)
        key_id = nonce = None
        if self.encryption is not None:
            key_id, nonce = self.encryption.keys.active, os.urandom(_NONCE_BYTES)
        header = from_fields(  # execution_id, pipeline_id, epoch, status: the state's
            SnapshotHeader,
            state,
            format_version=FORMAT_VERSION,
            schema_fingerprint=self.converter.fingerprint,
            compression=kind,
            key_id=key_id,
            nonce=nonce,
            sequence=state.last_sequence,
            position=position,
            occurred_at=occurred_at,
            created_at=created_at or datetime.now(UTC),
            raw_size=len(raw),
            body_size=len(body) + (_TAG_BYTES if self.encryption is not None else 0),
            body_sha256=hashlib.sha256(raw).digest(),
        )
        out = io.BytesIO()
        schemaless_writer(out, header_schema(), header.to_record())
        header_bytes = out.getvalue()
        prefix = _PREFIX.pack(MAGIC, FORMAT_VERSION, len(header_bytes)) + header_bytes
        seal = None
        if self.encryption is not None:
            assert nonce is not None and key_id is not None
            body = self.encryption.encrypt(nonce, body, prefix)
            seal = (self.encryption.keys.keys[key_id], prefix)
        compress = None if self.compression is None else self.compression.compress
        ids = encode_section(state, compress, seal)
        data = prefix + _CRC.pack(zlib.crc32(prefix)) + ids + body
        return EncodedSnapshot(data, header)

    def read_header(self, data: bytes, object_key: str) -> SnapshotHeader:
        """The header alone, checked (magic, version, CRC); the body is not looked at."""
        return _split(data, object_key)[0]

    def decode(self, data: bytes, object_key: str) -> Snapshot:
        """The snapshot in ``data``, every check passed, or :class:`SnapshotCorrupt`."""
        header, prefix, rest = _split(data, object_key)
        ids = rest[: section_size(rest, object_key) if header.format_version >= 2 else 0]
        body = bytes(rest[len(ids) :])
        if len(body) != header.body_size:
            problem = "truncated" if len(body) < header.body_size else "has trailing bytes"
            raise SnapshotCorrupt(
                object_key, f"body {problem}: {len(body)} bytes, header says {header.body_size}"
            )
        if header.schema_fingerprint not in self.converter.schemas.writers:
            unsigned = header.schema_fingerprint & (2**64 - 1)
            raise SnapshotCorrupt(object_key, f"unknown state schema fingerprint 0x{unsigned:016x}")
        key = None
        if header.key_id is not None:
            body = _decrypt(self.encryption, header, body, prefix, object_key)
            assert self.encryption is not None
            key = self.encryption.keys.key(header.key_id)
        raw = _decompress(header.compression, body, header.raw_size, object_key)
        if len(raw) != header.raw_size or hashlib.sha256(raw).digest() != header.body_sha256:
            raise SnapshotCorrupt(object_key, "body checksum (SHA-256) mismatch")
        state = self.converter.from_bytes(raw, header.schema_fingerprint, object_key)
        if (state.execution_id, state.last_sequence) != (header.execution_id, header.sequence):
            raise SnapshotCorrupt(object_key, "header and body name different states")
        if header.format_version >= 2:
            state = attach_section(state, ids, key, prefix, object_key)
        return Snapshot(header, state)


def _split(data: bytes, object_key: str) -> tuple[SnapshotHeader, bytes, memoryview]:
    if len(data) < _PREFIX.size:
        raise SnapshotCorrupt(object_key, f"truncated: {len(data)} bytes")
    magic, version, header_len = _PREFIX.unpack_from(data)
    if magic != MAGIC:
        raise SnapshotCorrupt(object_key, "not a snapshot (bad magic bytes)")
    if version not in (1, FORMAT_VERSION):
        raise SnapshotCorrupt(object_key, f"unsupported format version {version}")
    end = _PREFIX.size + header_len
    if len(data) < end + _CRC.size:
        raise SnapshotCorrupt(object_key, f"truncated inside the header ({len(data)} bytes)")
    prefix = data[:end]
    (crc,) = _CRC.unpack_from(data, end)
    if zlib.crc32(prefix) != crc:
        raise SnapshotCorrupt(object_key, "header checksum (CRC-32) mismatch")
    try:
        record = schemaless_reader(io.BytesIO(prefix[_PREFIX.size :]), header_schema(), None)
        header = SnapshotHeader.from_record(version, record)  # type: ignore[arg-type]
    except (ValueError, TypeError, KeyError, EOFError, IndexError, UnicodeDecodeError) as exc:
        raise SnapshotCorrupt(object_key, f"header does not decode: {exc}") from exc
    return header, prefix, memoryview(data)[end + _CRC.size :]


def codec_from_settings(
    *,
    compress: bool = True,
    level: int = 3,
    min_size: int = 1024,
    encrypt: bool = False,
    keys: KeyRing | None = None,
    algorithm: CompressionAlgorithm = "zstd",
) -> SnapshotCodec:
    """The codec the seed's ``checkpointing.storage`` and ``compression`` blocks describe.

    ``encrypt=True`` without keys fails here, at startup, naming the setting.
    """
    if encrypt and keys is None:
        raise SnapshotConfigError(
            "checkpointing.storage.encrypt",
            "true, but ORCHESTRATOR_SNAPSHOT_KEYS is not set",
        )
    return SnapshotCodec(
        compression=SnapshotCompression(level, min_size, algorithm) if compress else None,
        encryption=AesGcmEncryption(keys) if encrypt and keys is not None else None,
    )
