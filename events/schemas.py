"""Avro schema sets: the current reader schema and every released writer schema.

``schemas/`` (next to this package) holds one named record per ``.avsc`` file, each
file named after its record (``TaskStarted.avsc`` holds ``orchestrator.events.TaskStarted``)::

    schemas/current/*.avsc        the schema this code writes, and reads everything as
    schemas/releases/v1/*.avsc    every published version, complete and never edited
    schemas/releases/v1/FINGERPRINT   its fingerprint, written when it was published

A :class:`SchemaSet` is one such directory composed into the full ``Envelope`` schema
(fastavro's named-type loading pulls the referenced records from sibling files), with
its CRC-64-AVRO fingerprint of the Parsing Canonical Form. The :class:`SchemaRegistry`
maps every fingerprint (current and releases) to its writer schema, so a reader
resolves any released writer schema to the current reader schema.

Run ``python -m orchestrator.events.schemas`` to print each set's fingerprint,
``... sync`` to write the catalogue's event types as current's Envelope payload union,
and ``... release`` to publish current as the next release.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from fastavro.repository.base import AbstractSchemaRepository, SchemaRepositoryError
from fastavro.schema import (
    SchemaParseException,
    UnknownType,
    fingerprint,
    load_schema,
    to_parsing_canonical_form,
)
from fastavro.types import DictSchema, Schema

from orchestrator.events.catalogue import PAYLOAD_TYPES
from orchestrator.events.errors import EventsError, error_fields

NAMESPACE = "orchestrator.events"
ENVELOPE = "Envelope"
FINGERPRINT_ALGORITHM = "CRC-64-AVRO"
SINGLE_OBJECT_MAGIC = b"\xc3\x01"
CURRENT = "current"
FINGERPRINT_FILE = "FINGERPRINT"

_RELEASE_NAME = re.compile(r"v([1-9][0-9]*)")


@error_fields("schema set {directory}: {reason}")
class SchemaError(EventsError):
    """A schema directory that does not load: a bad file, a missing or misnamed record."""

    directory: Path
    reason: str


def schemas_root() -> Path:
    """The ``schemas/`` folder shipped inside the ``orchestrator`` package.

    Read through ``importlib.resources`` so an installed wheel finds it; a wheel is
    installed unpacked, so the resource is a real directory and ``Path`` is safe.
    """
    package = (__package__ or "orchestrator.events").rpartition(".")[0]
    return Path(str(resources.files(package).joinpath("schemas")))


def rabin_fingerprint(canonical_form: str) -> int:
    """CRC-64-AVRO (Rabin) of a Parsing Canonical Form, as an unsigned 64-bit integer."""
    # fastavro returns the hex of the 8 little-endian bytes, as the single-object header has them.
    return int.from_bytes(
        bytes.fromhex(fingerprint(canonical_form, FINGERPRINT_ALGORITHM)), "little"
    )


@dataclass(frozen=True, slots=True)
class SchemaSet:
    """One directory of ``.avsc`` files composed into the full, parsed ``Envelope`` schema."""

    name: str
    directory: Path
    schema: DictSchema = field(repr=False, compare=False)
    """The parsed, composed ``Envelope`` schema, ready for fastavro."""
    canonical_form: str = field(repr=False)
    fingerprint: int
    records: Mapping[str, Mapping[str, Any]] = field(repr=False, compare=False)
    """Each file's JSON as written, by record name (``"TaskStarted"``)."""

    @property
    def header(self) -> bytes:
        """The single-object encoding header: ``C3 01`` + the fingerprint, little-endian."""
        return SINGLE_OBJECT_MAGIC + self.fingerprint.to_bytes(8, "little")

    @property
    def fingerprint_hex(self) -> str:
        """The fingerprint as written in messages and ``FINGERPRINT`` files, e.g. ``0x39c1...``."""
        return f"0x{self.fingerprint:016x}"

    def named_types(self) -> Mapping[str, Schema]:
        """Every named type of the composed schema, by full name."""
        named: dict[str, Schema] = self.schema["__named_schemas"]
        return MappingProxyType(named)


class _SiblingFiles(AbstractSchemaRepository):
    """fastavro repository resolving ``orchestrator.events.X`` to ``<directory>/X.avsc``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def load(self, name: str) -> Any:
        namespace, _, short = name.rpartition(".")
        if namespace != NAMESPACE:
            raise SchemaRepositoryError(f"named type {name} is outside namespace {NAMESPACE}")
        try:
            return json.loads((self.directory / f"{short}.avsc").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SchemaRepositoryError(f"cannot read {short}.avsc: {exc}") from exc


def _read_records(directory: Path) -> dict[str, Mapping[str, Any]]:
    records: dict[str, Mapping[str, Any]] = {}
    for path in sorted(directory.glob("*.avsc")):
        try:
            record = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise SchemaError(directory, f"{path.name}: not readable JSON: {exc}") from exc
        if not isinstance(record, dict) or record.get("type") != "record":
            raise SchemaError(directory, f"{path.name}: does not hold one named record")
        if record.get("name") != path.stem or record.get("namespace") != NAMESPACE:
            raise SchemaError(
                directory,
                f"{path.name}: holds {record.get('namespace')}.{record.get('name')}, "
                f"expected {NAMESPACE}.{path.stem}",
            )
        records[path.stem] = MappingProxyType(record)
    if ENVELOPE not in records:
        raise SchemaError(directory, f"no {ENVELOPE}.avsc")
    return records


def load_schema_set(directory: Path, name: str | None = None) -> SchemaSet:
    """Compose ``directory/Envelope.avsc`` with the records it names from sibling files."""
    records = _read_records(directory)
    try:
        schema = load_schema(f"{NAMESPACE}.{ENVELOPE}", repo=_SiblingFiles(directory))
        canonical = to_parsing_canonical_form(schema)
    except (SchemaRepositoryError, SchemaParseException, UnknownType, ValueError) as exc:
        raise SchemaError(directory, f"does not compose: {exc}") from exc
    if not isinstance(schema, dict):
        raise SchemaError(directory, f"{ENVELOPE}.avsc is not a record")
    return SchemaSet(
        name=name or directory.name,
        directory=directory,
        schema=schema,
        canonical_form=canonical,
        fingerprint=rabin_fingerprint(canonical),
        records=MappingProxyType(records),
    )


def payload_names(schema_set: SchemaSet) -> list[str]:
    """The Envelope's payload union, in order (the union index is on the wire)."""
    fields = schema_set.records[ENVELOPE]["fields"]
    return list(next(f for f in fields if f["name"] == "payload")["type"])


_PAYLOAD_UNION = re.compile(r'(\{"name": "payload", "type": )\[[^\]]*\]')


def sync_envelope(root: Path | None = None) -> list[str]:
    """Write the catalogue's event types, in its order, as ``current/Envelope.avsc``'s
    payload union (the catalogue is the one list of event types); returns the names
    added. Refuses to drop or reorder a released name: the union index is on the wire."""
    root = schemas_root() if root is None else root
    path = root / CURRENT / f"{ENVELOPE}.avsc"
    current = payload_names(load_schema_set(root / CURRENT, CURRENT))
    wanted = list(PAYLOAD_TYPES)
    if wanted[: len(current)] != current:
        raise SchemaError(
            path.parent,
            "the catalogue does not start with the Envelope's payload union "
            f"{current}: event types are appended, never removed or reordered",
        )
    text = path.read_text(encoding="utf-8")
    synced, count = _PAYLOAD_UNION.subn(lambda m: m.group(1) + json.dumps(wanted), text, count=1)
    if count != 1:
        raise SchemaError(path.parent, f"{ENVELOPE}.avsc: no payload field on one line")
    if synced != text:
        path.write_text(synced, encoding="utf-8")
    return wanted[len(current) :]


def _release_number(path: Path) -> int:
    match = _RELEASE_NAME.fullmatch(path.name)
    return int(match.group(1)) if match else 0


@dataclass(frozen=True, slots=True)
class SchemaRegistry:
    """Writer schemas by fingerprint (current and every release), and the reader schema."""

    current: SchemaSet
    releases: tuple[SchemaSet, ...]
    writers: Mapping[int, SchemaSet] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        writers: dict[int, SchemaSet] = {}
        # Releases first, so a fingerprint shared with current names the release.
        for schema_set in (*self.releases, self.current):
            writers.setdefault(schema_set.fingerprint, schema_set)
        object.__setattr__(self, "writers", MappingProxyType(writers))

    @property
    def reader(self) -> SchemaSet:
        """The schema every event is read as: the current one."""
        return self.current

    def writer(self, fingerprint: int) -> SchemaSet | None:
        """The writer schema with this fingerprint, or ``None`` if no known version has it."""
        return self.writers.get(fingerprint)

    def release(self, name: str) -> SchemaSet:
        """A released version by name (``"v1"``); ``KeyError`` if there is none."""
        for schema_set in self.releases:
            if schema_set.name == name:
                return schema_set
        raise KeyError(name)

    @classmethod
    def load(cls, root: Path | None = None) -> SchemaRegistry:
        """Load ``root/current`` and every ``root/releases/vN`` (default: the repo's schemas)."""
        root = schemas_root() if root is None else root
        release_dirs = sorted(
            (p for p in (root / "releases").glob("v*") if _release_number(p)),
            key=_release_number,
        )
        return cls(
            current=load_schema_set(root / CURRENT, CURRENT),
            releases=tuple(load_schema_set(p) for p in release_dirs),
        )


@functools.cache
def default_registry() -> SchemaRegistry:
    """The registry of the repository's ``schemas/`` folder, loaded once."""
    return SchemaRegistry.load()


def release(root: Path | None = None) -> SchemaSet:
    """Publish ``current`` as the next ``releases/vN``, with its ``FINGERPRINT`` file.

    Refuses when current is already the latest release (nothing changed).
    """
    root = schemas_root() if root is None else root
    registry = SchemaRegistry.load(root)
    latest = registry.releases[-1] if registry.releases else None
    if latest is not None and latest.fingerprint == registry.current.fingerprint:
        raise SchemaError(root / CURRENT, f"unchanged since {latest.name}: nothing to release")
    target = root / "releases" / f"v{len(registry.releases) + 1}"
    shutil.copytree(root / CURRENT, target)
    published = load_schema_set(target)
    (target / FINGERPRINT_FILE).write_text(published.fingerprint_hex + "\n", encoding="utf-8")
    return published


def main(argv: list[str] | None = None) -> int:
    """``python -m orchestrator.events.schemas [DIR...]`` prints fingerprints; ``... sync``
    writes the Envelope's payload union from the catalogue; ``... release`` publishes."""
    args = sys.argv[1:] if argv is None else argv
    if args in (["sync"], ["release"]):
        try:
            if args == ["sync"]:
                added = sync_envelope()
                print(f"Envelope payload union: added {', '.join(added)}" if added else "in sync")
            else:
                published = release()
                print(f"published {published.directory} {published.fingerprint_hex}")
        except SchemaError as exc:
            print(exc, file=sys.stderr)
            return 1
        return 0
    if args:
        sets = [load_schema_set(Path(arg)) for arg in args]
    else:
        registry = default_registry()
        sets = [registry.current, *registry.releases]
    for schema_set in sets:
        print(f"{schema_set.fingerprint_hex}  {schema_set.directory}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
