"""How the filesystem store lays a snapshot object out in its file (``config.format``).

- ``raw``: the snapshot object's bytes as they are (``OSNP``...).
- ``json``: a JSON document whose first key is ``orchestrator_snapshot`` (the layout
  version), then what the object's header says in readable form (execution, pipeline,
  sequence, epoch, status, compression, encrypted, sizes, created_at), then ``object``,
  the snapshot object in base64. ``jq`` shows what a file holds without our tools.
- ``msgpack``: the same map in MessagePack, with ``object`` as binary (no base64).

The layout is recognised from each file's first bytes, so files written under one
``format`` read back under any other (and files written before the option acted, raw,
keep reading). The readable fields are informational: reading returns the embedded
object, whose own header, checksums and (when encrypted) AES-GCM tag are what restore
checks. ``pickle`` is never written or read (it would run code on load).
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any, Literal

import msgpack

from orchestrator.snapshots.codec import SnapshotCodec
from orchestrator.snapshots.errors import SnapshotCorrupt

FileFormat = Literal["raw", "json", "msgpack"]
FILE_FORMATS: tuple[FileFormat, ...] = ("raw", "json", "msgpack")
_KEY = "orchestrator_snapshot"
_VERSION = 1
_JSON_START = b'{"' + _KEY.encode() + b'":'
_MSGPACK_KEY = msgpack.packb(_KEY)
_HEADERS = SnapshotCodec()


def _readable(data: bytes) -> dict[str, Any]:
    try:
        h = _HEADERS.read_header(data, "<file>")
    except SnapshotCorrupt:
        return {}  # not a snapshot object (a store holds any bytes): the object alone
    return {
        "execution_id": h.execution_id,
        "pipeline_id": h.pipeline_id,
        "sequence": h.sequence,
        "epoch": h.epoch,
        "status": h.status,
        "compression": h.compression,
        "encrypted": h.key_id is not None,
        "raw_size": h.raw_size,
        "body_size": h.body_size,
        "created_at": h.created_at.isoformat(),
    }


def wrap(data: bytes, file_format: FileFormat) -> bytes:
    """The file content holding the object ``data`` in ``file_format``."""
    if file_format == "raw":
        return data
    fields: dict[str, Any] = {_KEY: _VERSION, **_readable(data)}
    if file_format == "json":
        fields["object"] = base64.b64encode(data).decode()
        return json.dumps(fields, separators=(",", ":")).encode()
    if file_format == "msgpack":
        fields["object"] = data
        packed: bytes = msgpack.packb(fields, use_bin_type=True)
        return packed
    raise ValueError(f"unknown snapshot file format {file_format!r}")


def format_of(content: bytes) -> FileFormat:
    """Which layout a file's content is in, from its first bytes."""
    if content.startswith(_JSON_START):
        return "json"
    if content[:1] and 0x80 <= content[0] <= 0x8F and content[1:].startswith(_MSGPACK_KEY):
        return "msgpack"
    return "raw"


def unwrap(content: bytes, key: str) -> bytes:
    """The object a file holds, whichever layout wrote it; ``SnapshotCorrupt`` if the
    envelope is damaged."""
    layout = format_of(content)
    if layout == "raw":
        return content
    try:
        if layout == "json":
            doc = json.loads(content)
            obj = doc.get("object") if isinstance(doc, dict) else None
            if not isinstance(obj, str):
                raise ValueError("no 'object' field")
            return base64.b64decode(obj, validate=True)
        doc = msgpack.unpackb(content, raw=False, strict_map_key=True)
        obj = doc.get("object") if isinstance(doc, dict) else None
        if not isinstance(obj, bytes):
            raise ValueError("no binary 'object' field")
        return obj
    except (ValueError, binascii.Error, msgpack.UnpackException) as exc:
        raise SnapshotCorrupt(key, f"{layout} snapshot file does not decode: {exc}") from exc
