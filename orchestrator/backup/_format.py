"""The backup's files: Avro object container files in chunks, and a JSON manifest.

A backup is a folder (a directory, or an S3 prefix) holding::

    manifest.json                 counts, the cut, per-execution last sequence, checksums
    schemas/...                   the event schemas (current and every release), copied
    events/pipeline-00000.avro    the pipeline topic's records, partition by partition,
    events/shared-00000.avro      ... and the shared topic's, in offset order
    snapshots/part-00000.avro     snapshot objects with their index rows
    blobs/part-00000.avro         claim-checked user data the events reference
    keys/part-00000.avro          the wrapped data keys of user-data encryption (``data_keys``)

Every ``.avro`` file is a standard Avro object container file (its own schema in its
header, deflate blocks). An event record's ``value`` is the event exactly as the log
held it: Avro single-object encoding, whose header names the writer schema's
fingerprint, so any Avro reader with the files and ``schemas/`` decodes it (the
fingerprints are in each ``releases/vN/FINGERPRINT``). Files are written in chunks of
bounded size, so neither writing nor reading holds more than one chunk in memory; the
manifest lists each file with its record count and SHA-256, checked before it is read.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from io import BytesIO
from typing import Any, cast

from fastavro import parse_schema, reader, writer

from orchestrator.events import OrchestratorStateError
from orchestrator.snapshots import SnapshotStore

FORMAT = "orchestrator-state-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
_CODEC = "deflate"  # every Avro implementation reads it


def _field(name: str, avro_type: Any, doc: str | None = None) -> dict[str, Any]:
    return {"name": name, "type": avro_type} | ({"doc": doc} if doc else {})


def _record(name: str, doc: str, *fields: dict[str, Any]) -> Any:
    """A parsed record schema of the backup's files (namespace ``orchestrator.backup``)."""
    return parse_schema(
        {
            "type": "record",
            "name": name,
            "namespace": "orchestrator.backup",
            "doc": doc,
            "fields": list(fields),
        }
    )


EVENT_SCHEMA = _record(
    "BackupEvent",
    "One record of an event topic, as the log held it.",
    _field("topic", "string", "The topic it was read from."),
    _field("partition", "int"),
    _field("offset", "long", "Its offset in the backed-up topic."),
    _field("key", ["null", "bytes"], "The Kafka key."),
    _field("execution_id", ["null", "string"]),
    _field("sequence", ["null", "long"]),
    _field("event_id", ["null", "string"]),
    _field("event_type", ["null", "string"]),
    _field(
        "outcome", ["null", "string"], "The fold's verdict (archive); null when read from the log."
    ),
    _field("source", "string", "archive or log"),
    _field(
        "value",
        "bytes",
        "The event: Avro single-object encoding (C3 01, writer fingerprint, body).",
    ),
)

SNAPSHOT_SCHEMA = _record(
    "BackupSnapshot",
    "A snapshot object (snapshots codec) with its index row.",
    _field("execution_id", "string"),
    _field("pipeline_id", "string"),
    _field("sequence", "long"),
    _field("epoch", "long"),
    _field("status", "string"),
    _field("object_key", "string"),
    _field("topic", "string"),
    _field("partition", "int"),
    _field("offset", "long", "The last folded event's offset."),
    _field("data", "bytes", "The object as the store held it."),
)

BLOB_SCHEMA = _record(
    "BackupBlob",
    "Claim-checked user data, by the URI events reference it with.",
    _field("uri", "string"),
    _field("sha256", "string"),
    _field("size", "long"),
    _field("data", "bytes"),
)

DATA_KEY_SCHEMA = _record(
    "BackupDataKey",
    "A row of data_keys: a data key wrapped by a master key of the key ring "
    "(never the key itself), or the tombstone an erasure left.",
    _field("scope", "string", "An execution or a namespace."),
    _field("master_key_id", ["null", "string"]),
    _field("wrapped_key", ["null", "bytes"], "null once erased."),
    _field("created_at", {"type": "long", "logicalType": "timestamp-micros"}),
    _field("erased_at", ["null", {"type": "long", "logicalType": "timestamp-micros"}]),
)


class BackupFormatError(OrchestratorStateError):
    """A backup that is not one, is damaged, or is of a format this version cannot read."""


@dataclass(frozen=True, slots=True)
class FileEntry:
    """One file of the backup, as the manifest lists it."""

    path: str
    kind: str
    records: int
    bytes: int
    sha256: str


@dataclass(slots=True)
class Manifest:
    """What the backup holds; ``manifest.json``."""

    created_at: str
    source: dict[str, Any]
    schema: dict[str, Any]
    cut: dict[str, int]
    """``topic:partition`` -> the end offset (exclusive) of the prefix backed up."""
    counts: dict[str, int]
    executions: dict[str, int]
    """Execution id -> the last sequence of its gapless applied run in the backup."""
    files: list[FileEntry] = field(default_factory=list)
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> bytes:
        return json.dumps(asdict(self), indent=1, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> Manifest:
        try:
            raw = json.loads(data)
            if raw.get("format") != FORMAT:
                raise BackupFormatError(f"not an {FORMAT} manifest (format {raw.get('format')!r})")
            if raw.get("format_version") != FORMAT_VERSION:
                raise BackupFormatError(
                    f"backup format version {raw.get('format_version')} is not "
                    f"{FORMAT_VERSION}, the one this version reads"
                )
            raw["files"] = [FileEntry(**f) for f in raw.get("files", [])]
            return cls(**raw)
        except (ValueError, TypeError, AttributeError) as exc:
            if isinstance(exc, BackupFormatError):
                raise
            raise BackupFormatError(f"{MANIFEST} is not readable: {exc}") from exc

    def of_kind(self, kind: str) -> list[FileEntry]:
        return [f for f in self.files if f.kind == kind]


class ChunkWriter:
    """Writes records of one kind as ``<prefix>-NNNNN.avro`` files of bounded size."""

    def __init__(
        self,
        store: SnapshotStore,
        prefix: str,
        kind: str,
        schema: Any,
        *,
        max_records: int = 20_000,
        max_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        self.store, self.prefix, self.kind, self.schema = store, prefix, kind, schema
        self.max_records, self.max_bytes = max_records, max_bytes
        self.entries: list[FileEntry] = []
        self._records: list[Mapping[str, Any]] = []
        self._bytes = 0

    async def add(self, record: Mapping[str, Any], size: int) -> None:
        """Add a record (``size``: roughly its bytes); a full chunk is written out."""
        self._records.append(record)
        self._bytes += size
        if len(self._records) >= self.max_records or self._bytes >= self.max_bytes:
            await self.flush()

    async def flush(self) -> None:
        if not self._records:
            return
        out = BytesIO()
        writer(out, self.schema, self._records, codec=_CODEC)
        data = out.getvalue()
        path = f"{self.prefix}-{len(self.entries):05d}.avro"
        await self.store.put(path, data)
        self.entries.append(
            FileEntry(path, self.kind, len(self._records), len(data), _sha256(data))
        )
        self._records, self._bytes = [], 0


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


async def read_file(store: SnapshotStore, entry: FileEntry) -> Iterator[dict[str, Any]]:
    """The records of one file, after its size and SHA-256 were checked."""
    data = await store.get(entry.path)
    digest = _sha256(data)
    if digest != entry.sha256 or len(data) != entry.bytes:
        raise BackupFormatError(
            f"{store.uri(entry.path)} is damaged: sha256 {digest} ({len(data)} bytes), "
            f"the manifest says {entry.sha256} ({entry.bytes} bytes)"
        )
    return (cast(dict[str, Any], record) for record in reader(BytesIO(data)))
