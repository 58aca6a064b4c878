"""How the codec reads an older event through the registered upcasters (``events.upcast``).

The event is read with its writer's schema alone (a dict in the writer's shape); for
each upcaster in the chain, the record is first resolved by Avro to the version the
upcaster starts from, then the upcaster turns the payload into the next version's;
finally the record is resolved to the current (reader) schema and handed to the
compiled decoder, as the plain resolving path does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from io import BytesIO
from typing import Any

from fastavro import schemaless_reader, schemaless_writer

from orchestrator.events import _avro
from orchestrator.events.schemas import SchemaRegistry, SchemaSet
from orchestrator.events.upcast import UpcasterRegistry

_RELEASE = re.compile(r"v([1-9][0-9]*)")


def schema_versions(registry: SchemaRegistry) -> dict[int, SchemaSet]:
    """Each schema version by number: ``releases/vN`` is N; ``current`` is the latest
    release's number when it is that release, else the next number (unreleased)."""
    versions: dict[int, SchemaSet] = {}
    for release in registry.releases:
        match = _RELEASE.fullmatch(release.name)
        if match:
            versions[int(match.group(1))] = release
    latest = max(versions, default=0)
    if latest and versions[latest].fingerprint == registry.current.fingerprint:
        versions[latest] = registry.current
    else:
        versions[latest + 1] = registry.current
    return versions


def version_of(versions: Mapping[int, SchemaSet], schema_set: SchemaSet) -> int | None:
    """The version number of a schema set (matched by fingerprint), if it is one."""
    for number, known in versions.items():
        if known.fingerprint == schema_set.fingerprint:
            return number
    return None


def _read(data: BytesIO, writer: SchemaSet, reader: SchemaSet | None) -> Any:
    return schemaless_reader(
        data,
        writer.schema,
        None if reader is None else reader.schema,
        return_record_name=True,
        return_record_name_override=True,
    )


def _write(record: Any, schema_set: SchemaSet) -> bytes:
    out = BytesIO()
    schemaless_writer(out, schema_set.schema, record)
    return out.getvalue()


def _resolve(record: Any, source: SchemaSet, target: SchemaSet) -> Any:
    """The record of ``source``'s shape as ``target`` reads it (Avro resolution)."""
    if source.fingerprint == target.fingerprint:
        return record
    return _read(BytesIO(_write(record, source)), source, target)


@dataclass(frozen=True, slots=True)
class Upcasting:
    """The chain of one writer version up to the reader's version."""

    upcasters: UpcasterRegistry
    writer_version: int
    reader_version: int
    versions: Mapping[int, SchemaSet]

    def applies(self) -> bool:
        return bool(self.upcasters) and self.writer_version < self.reader_version

    def decode(self, data: bytes, pos: int, decoder: _avro.Decoder) -> tuple[Any, int]:
        """Read, upcast and decode one event body at ``pos``; return it and its end."""
        fo = BytesIO(data)
        fo.seek(pos)
        try:
            record = _read(fo, self.versions[self.writer_version], None)
        except Exception as exc:  # fastavro raises many kinds on bad bytes: all "corrupt"
            raise _avro.Corrupt(f"{type(exc).__name__}: {exc}") from exc
        end = fo.tell()
        name, _ = record["payload"]
        event_type = _avro.short_name(name)
        version = self.writer_version
        for start, fn in self.upcasters.chain(event_type, version, self.reader_version):
            step = f"upcaster of {event_type} from v{start}"
            try:
                record = _resolve(record, self.versions[version], self.versions[start])
                payload = fn(dict(record["payload"][1]))
                record["payload"] = (record["payload"][0], payload)
                _write(record, self.versions[start + 1])  # it must fit the next version
            except Exception as exc:
                raise _avro.Corrupt(f"{step} failed: {type(exc).__name__}: {exc}") from exc
            version = start + 1
        reader = self.versions[self.reader_version]
        try:
            resolved = _write(_resolve(record, self.versions[version], reader), reader)
        except Exception as exc:
            raise _avro.Corrupt(f"upcast {event_type} does not fit v{version}: {exc}") from exc
        envelope, _ = decoder(resolved, 0)
        return envelope, end
