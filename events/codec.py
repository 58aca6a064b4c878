"""The event codec: an :class:`Envelope` to Avro single-object encoding and back.

Every message is ``C3 01`` + the 8-byte little-endian CRC-64-AVRO fingerprint of the
writer schema + the Avro binary body. Encoding checks every field against the writer
schema first and names the one that does not fit (:class:`~events.errors.InvalidEvent`);
decoding looks the fingerprint up in the :class:`~events.schemas.SchemaRegistry` and
resolves any released writer schema to the reader (current) schema. Bytes that are
not such a message raise :class:`~events.errors.DecodeError`; the log adds where they
were read with ``DecodeError.at(topic, partition, offset)``.

The body is encoded and decoded by functions compiled from the schema
(``events._avro``), which build the dataclasses directly; fastavro composes and
fingerprints the schemas, and resolves data written with an older schema.
"""

from __future__ import annotations

import functools
import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from io import BytesIO
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from orchestrator.events import _avro
from orchestrator.events._avro_decode import compile_decoder
from orchestrator.events._avro_encode import compile_encoder
from orchestrator.events._upcasting import Upcasting, schema_versions, version_of
from orchestrator.events.catalogue import (
    PAYLOAD_TYPES,
    ExecutionContext,
    ExecutionDetails,
    TaskSpec,
)
from orchestrator.events.envelope import Envelope
from orchestrator.events.errors import DecodeError, InvalidEvent
from orchestrator.events.limits import DEFAULT_LIMITS, InputLimits, event_problem
from orchestrator.events.registry import check_catalogue
from orchestrator.events.schemas import (
    SINGLE_OBJECT_MAGIC,
    SchemaRegistry,
    SchemaSet,
    default_registry,
)
from orchestrator.events.upcast import UpcasterRegistry, default_upcasters
from orchestrator.events.userdata import BlobRef, UserData

HEADER_SIZE = 10

RECORD_CLASSES: Mapping[str, type] = {
    "Envelope": Envelope,
    "TaskSpec": TaskSpec,
    "ExecutionContext": ExecutionContext,
    "ExecutionDetails": ExecutionDetails,
    "UserData": UserData,
    "BlobRef": BlobRef,
    **PAYLOAD_TYPES,
}
"""The dataclass of each Avro record, by record name."""

# What the compiled decoder raises on bytes that do not fit the schema.
_CORRUPT = (IndexError, ValueError, struct.error, OverflowError, TypeError)


def _resolving_decoder(
    writer: SchemaSet,
    reader: SchemaSet,
    decoder: _avro.Decoder,
    upcasting: Upcasting | None = None,
) -> _avro.Decoder:
    """Read with fastavro's schema resolution, re-encode as the reader schema, decode that;
    through the registered upcasters when any apply (``events.upcast``)."""
    writer_schema, reader_schema = writer.schema, reader.schema

    def decode(data: bytes, pos: int) -> tuple[Any, int]:
        if upcasting is not None and upcasting.applies():
            return upcasting.decode(data, pos, decoder)
        fo = BytesIO(data)
        fo.seek(pos)
        try:
            record = schemaless_reader(
                fo,
                writer_schema,
                reader_schema,
                return_record_name=True,
                return_record_name_override=True,
            )
            resolved = BytesIO()
            schemaless_writer(resolved, reader_schema, record)
        except Exception as exc:  # fastavro raises many kinds on bad bytes; all mean "corrupt"
            raise _avro.Corrupt(f"{type(exc).__name__}: {exc}") from exc
        envelope, _ = decoder(resolved.getvalue(), 0)
        return envelope, fo.tell()

    return decode


@dataclass(frozen=True, slots=True, init=False)
class EventCodec:
    """Envelope <-> bytes, writing ``writer``'s schema and reading everything as ``reader``.

    Both default to the registry's current schema. A codec writing an older release
    (``writer=registry.release("v1")``) serves rolling upgrades and compatibility tests.
    ``limits`` bound what it reads and writes (``events.limits``): a record over them
    does not decode, the same way in every reader. ``upcasters`` (default: the
    process's registry, ``events.upcast``) turn older releases' payloads into the
    current ones on read.
    """

    registry: SchemaRegistry
    writer: SchemaSet
    reader: SchemaSet
    limits: InputLimits
    upcasters: UpcasterRegistry = field(repr=False, compare=False)
    _encode_body: _avro.Encoder = field(repr=False, compare=False)
    _header: bytes = field(repr=False, compare=False)
    _decoders: Mapping[bytes, _avro.Decoder] = field(repr=False, compare=False)

    def __init__(
        self,
        registry: SchemaRegistry | None = None,
        *,
        writer: SchemaSet | None = None,
        reader: SchemaSet | None = None,
        limits: InputLimits = DEFAULT_LIMITS,
        upcasters: UpcasterRegistry | None = None,
    ) -> None:
        registry = default_registry() if registry is None else registry
        writer = registry.current if writer is None else writer
        reader = registry.reader if reader is None else reader
        upcasters = default_upcasters() if upcasters is None else upcasters
        decode_reader = compile_decoder(reader.schema, RECORD_CLASSES)
        versions = schema_versions(registry)
        reader_version = version_of(versions, reader)
        decoders: dict[bytes, _avro.Decoder] = {}
        for known in {*registry.writers.values(), writer}:
            if known.fingerprint == reader.fingerprint:
                decoders[known.header] = decode_reader
                continue
            known_version = version_of(versions, known)
            upcasting = None
            if known_version is not None and reader_version is not None:
                upcasting = Upcasting(upcasters, known_version, reader_version, versions)
            decoders[known.header] = _resolving_decoder(known, reader, decode_reader, upcasting)
        object.__setattr__(self, "registry", registry)
        object.__setattr__(self, "writer", writer)
        object.__setattr__(self, "reader", reader)
        object.__setattr__(self, "limits", limits)
        object.__setattr__(self, "upcasters", upcasters)
        object.__setattr__(self, "_encode_body", compile_encoder(writer.schema, RECORD_CLASSES))
        object.__setattr__(self, "_header", writer.header)  # a property: computed per call
        object.__setattr__(self, "_decoders", decoders)

    @property
    def fingerprint(self) -> int:
        """The CRC-64-AVRO fingerprint of the schema this codec writes."""
        return self.writer.fingerprint

    def encode(self, envelope: Envelope) -> bytes:
        """The event as a single-object encoded message; ``InvalidEvent`` if it does not fit."""
        out = bytearray(self._header)
        try:
            self._encode_body(envelope, out)
        except _avro.Mismatch as exc:
            raise _invalid(envelope, exc.parts, exc.reason) from None
        except AttributeError as exc:  # e.g. a payload that is not a dataclass
            raise _invalid(envelope, ["payload"], f"expected a payload record: {exc}") from None
        # What readers would refuse is refused before anything is sent.
        problem = event_problem(envelope, self.limits)
        if problem is None and len(out) > self.limits.max_record_bytes:
            limit = self.limits.max_record_bytes
            problem = f"{len(out)} bytes, over limits.max_record_bytes {limit}"
        if problem is not None:
            raise _invalid(envelope, [], problem)
        return bytes(out)

    def decode(self, data: bytes) -> Envelope:
        """The event in a message; ``DecodeError`` (without a position) if it is not one."""
        if data.__class__ is not bytes:
            data = bytes(data)
        if len(data) > self.limits.max_record_bytes:
            raise DecodeError(
                f"record of {len(data)} bytes is over limits.max_record_bytes "
                f"{self.limits.max_record_bytes}"
            )
        decoder = self._decoders.get(data[:HEADER_SIZE])
        if decoder is None:
            raise DecodeError(self._bad_header(data))
        try:
            envelope, end = decoder(data, HEADER_SIZE)
        except _CORRUPT as exc:
            raise DecodeError(_corrupt_reason(exc)) from exc
        if end != len(data):
            raise DecodeError(f"{len(data) - end} trailing bytes after the event")
        problem = event_problem(envelope, self.limits)
        if problem is not None:
            raise DecodeError(problem)
        result: Envelope = envelope
        return result

    def decode_many(self, messages: Iterable[bytes]) -> list[Envelope]:
        """Decode a batch; the first bad message raises (its index is in the reason)."""
        decode = self.decode
        out: list[Envelope] = []
        for index, data in enumerate(messages):
            try:
                out.append(decode(data))
            except DecodeError as exc:
                raise DecodeError(f"message {index} of the batch: {exc.reason}") from exc
        return out

    def _bad_header(self, data: bytes) -> str:
        if len(data) < HEADER_SIZE:
            return f"{len(data)} bytes is shorter than the {HEADER_SIZE}-byte single-object header"
        if data[:2] != SINGLE_OBJECT_MAGIC:
            return f"not Avro single-object encoding: magic {data[:2].hex()}, expected c301"
        fingerprint = int.from_bytes(data[2:HEADER_SIZE], "little")
        return f"unknown schema fingerprint 0x{fingerprint:016x}"


def _corrupt_reason(exc: Exception) -> str:
    if isinstance(exc, _avro.Corrupt):
        return f"corrupt body: {exc}"
    if isinstance(exc, IndexError | struct.error):
        return "truncated body: the message ends inside a value"
    if isinstance(exc, UnicodeDecodeError):
        return f"corrupt body: a string is not UTF-8 ({exc.reason})"
    return f"corrupt body: {type(exc).__name__}: {exc}"


def _invalid(envelope: Any, parts: list[str], reason: str) -> InvalidEvent:
    """Name the field: inside the payload relative to it, else as ``Envelope.<field>``."""
    if not isinstance(envelope, Envelope):
        return InvalidEvent(type(envelope).__name__, "Envelope", reason)
    event_type = getattr(envelope.payload, "event_type", None)
    if not isinstance(event_type, str):
        event_type = type(envelope.payload).__name__
    path = ".".join(parts).replace(".[", "[")
    if parts and parts[0] == "payload" and len(parts) > 1:
        return InvalidEvent(event_type, path.removeprefix("payload."), reason)
    return InvalidEvent(event_type, f"Envelope.{path}", reason)


@functools.cache
def default_codec() -> EventCodec:
    """The codec of the repository's schemas (write current, read any release), built once;
    refuses an incomplete event catalogue first (``events.registry``)."""
    check_catalogue()
    return EventCodec(default_registry())


def codec_for(limits: InputLimits) -> EventCodec:
    """The default codec with these input limits (the shared one for the defaults)."""
    return default_codec() if limits == DEFAULT_LIMITS else _limited_codec(limits)


@functools.cache
def _limited_codec(limits: InputLimits) -> EventCodec:
    return EventCodec(default_registry(), limits=limits)
