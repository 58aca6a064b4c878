"""Every schema in ``schemas/current`` is backward and forward compatible with every release.

Backward: data written with a release decodes with current as the reader. Forward: data
written with current decodes with the release as the reader. Both are proved on data
(hypothesis envelopes of every payload type) and on structure (a field only appears or
disappears with a default; a field's type never changes; a record is never removed).
The one allowed exception: a new payload record may join the Envelope's payload union;
a reader on an older release then rejects events of that new type with DecodeError.
"""

from __future__ import annotations

import functools
import json
import shutil
from dataclasses import MISSING, fields, is_dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.events.catalogue import PAYLOAD_TYPES, TaskStarted
from orchestrator.events.codec import RECORD_CLASSES, EventCodec
from orchestrator.events.envelope import Envelope
from orchestrator.events.errors import DecodeError
from orchestrator.events.schemas import (
    ENVELOPE,
    FINGERPRINT_FILE,
    NAMESPACE,
    SchemaError,
    SchemaRegistry,
    SchemaSet,
    default_registry,
    load_schema_set,
    schemas_root,
)
from orchestrator.events.schemas import release as publish_release
from tests.avro_records import avro_value
from tests.strategies import PAYLOADS, envelopes

REGISTRY = default_registry()
SETS = [REGISTRY.current, *REGISTRY.releases]
EXAMPLES = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _payload_names(schema_set: SchemaSet) -> list[str]:
    payload = next(f for f in schema_set.records[ENVELOPE]["fields"] if f["name"] == "payload")
    return list(payload["type"])


def _project(value: Any, schema_set: SchemaSet) -> Any:
    """The value as the schema set sees it: only the fields its records have."""
    if is_dataclass(value) and not isinstance(value, type):
        record = schema_set.records[type(value).__name__]
        return {
            f["name"]: _project(getattr(value, f["name"]), schema_set) for f in record["fields"]
        }
    if isinstance(value, tuple | list):
        return [_project(item, schema_set) for item in value]
    return value


# --- the rabin fingerprint, from the Avro specification ------------------------------

_EMPTY = 0xC15D213AA4D7A795


def _spec_fingerprint(data: bytes) -> int:
    table = []
    for i in range(256):
        fp = i
        for _ in range(8):
            fp = (fp >> 1) ^ (_EMPTY & -(fp & 1))
        table.append(fp)
    fp = _EMPTY
    for byte in data:
        fp = (fp >> 8) ^ table[(fp ^ byte) & 0xFF]
    return fp


@pytest.mark.parametrize("schema_set", SETS, ids=lambda s: s.name)
def test_fingerprint_is_crc64_avro_of_the_canonical_form(schema_set: SchemaSet) -> None:
    assert schema_set.fingerprint == _spec_fingerprint(schema_set.canonical_form.encode())
    assert schema_set.header == b"\xc3\x01" + schema_set.fingerprint.to_bytes(8, "little")
    assert '"doc"' not in schema_set.canonical_form


# --- the files ------------------------------------------------------------------------


@pytest.mark.parametrize("schema_set", SETS, ids=lambda s: s.name)
def test_each_file_holds_one_documented_named_record(schema_set: SchemaSet) -> None:
    for path in sorted(schema_set.directory.glob("*.avsc")):
        record = json.loads(path.read_text())
        assert record["type"] == "record", path
        assert (record["namespace"], record["name"]) == (NAMESPACE, path.stem), path
        assert record.get("doc"), path
        nested = json.dumps([f["type"] for f in record["fields"]])
        assert '"record"' not in nested, f"{path.name} defines a nested record; give it a file"
        for field in record["fields"]:
            assert field.get("doc"), f"{path.name}: field {field['name']} has no doc"
            if isinstance(field["type"], list) and "null" in field["type"]:
                assert field["type"][0] == "null", f"{path.name}: {field['name']}: null first"
                assert "default" in field and field["default"] is None, (
                    f"{path.name}: optional field {field['name']} needs default null"
                )


@pytest.mark.parametrize("schema_set", SETS, ids=lambda s: s.name)
def test_every_file_is_used_by_the_envelope(schema_set: SchemaSet) -> None:
    composed = {name.rpartition(".")[2] for name in schema_set.named_types()}
    assert set(schema_set.records) <= composed


def test_payload_records_match_the_catalogue() -> None:
    current = REGISTRY.current
    assert _payload_names(current) == list(PAYLOAD_TYPES)
    assert set(current.records) == set(RECORD_CLASSES)


@pytest.mark.parametrize("name", sorted(RECORD_CLASSES))
def test_records_match_their_dataclasses(name: str) -> None:
    cls = RECORD_CLASSES[name]
    record = REGISTRY.current.records[name]
    by_name = {f["name"]: f for f in record["fields"]}
    init = {f.name: f for f in fields(cls) if f.init}
    extra = {"event_type"} if name == ENVELOPE else set()
    assert set(by_name) == set(init) | extra
    for field_name, field in init.items():
        avro = by_name[field_name]
        if field.default is not MISSING:
            assert "default" in avro, f"{name}.{field_name}: Python default, no Avro default"
            assert avro_value(field.default) == avro["default"], f"{name}.{field_name}"
        elif field.default_factory is not MISSING and "default" in avro:
            assert avro_value(field.default_factory()) == avro["default"], f"{name}.{field_name}"


# --- releases -------------------------------------------------------------------------


def test_releases_are_numbered_from_v1_without_gaps() -> None:
    assert REGISTRY.releases, "publish v1: copy schemas/current to schemas/releases/v1"
    assert [s.name for s in REGISTRY.releases] == [f"v{n + 1}" for n in range(len(SETS) - 1)]
    on_disk = sorted(p.name for p in (schemas_root() / "releases").iterdir() if p.is_dir())
    assert sorted(s.name for s in REGISTRY.releases) == on_disk


@pytest.mark.parametrize("release", REGISTRY.releases, ids=lambda s: s.name)
def test_a_release_is_never_edited(release: SchemaSet) -> None:
    recorded = (release.directory / FINGERPRINT_FILE).read_text().strip()
    assert recorded == release.fingerprint_hex, f"{release.name} changed after publication"


@pytest.mark.parametrize("release", REGISTRY.releases, ids=lambda s: s.name)
def test_every_fingerprint_resolves(release: SchemaSet) -> None:
    assert REGISTRY.writer(release.fingerprint) is not None
    assert REGISTRY.writer(REGISTRY.current.fingerprint) is not None
    assert REGISTRY.release(release.name) is release


def compatibility_problems(release: SchemaSet, current: SchemaSet) -> list[str]:
    """What makes current not both backward and forward compatible with release."""
    problems = []
    for name, old in release.records.items():
        new = current.records.get(name)
        if new is None:
            problems.append(f"record {name} was removed")
            continue
        old_fields = {f["name"]: f for f in old["fields"]}
        new_fields = {f["name"]: f for f in new["fields"]}
        for field_name in new_fields.keys() - old_fields.keys():
            if "default" not in new_fields[field_name]:
                problems.append(f"{name}.{field_name} was added without a default")
        for field_name in old_fields.keys() - new_fields.keys():
            if "default" not in old_fields[field_name]:
                problems.append(f"{name}.{field_name} was removed without a default")
        for field_name in old_fields.keys() & new_fields.keys():
            old_type, new_type = old_fields[field_name]["type"], new_fields[field_name]["type"]
            payload = name == ENVELOPE and field_name == "payload"
            appended = payload and new_type[: len(old_type)] == old_type
            if old_type != new_type and not appended:
                problems.append(f"{name}.{field_name} changed type: {old_type} -> {new_type}")
    return problems


@pytest.mark.parametrize("release", REGISTRY.releases, ids=lambda s: s.name)
def test_current_keeps_the_structure_of_every_release(release: SchemaSet) -> None:
    assert compatibility_problems(release, REGISTRY.current) == []


# --- data round trips -----------------------------------------------------------------

CASES = [(r, t) for r in REGISTRY.releases for t in PAYLOAD_TYPES]


class _Codecs:
    """The three codecs that carry data between a release and current."""

    def __init__(self, registry: SchemaRegistry, release: SchemaSet) -> None:
        self.release = release
        self.current = registry.current
        self.old_writer = EventCodec(registry, writer=release)
        self.new_writer = EventCodec(registry)
        self.old_reader = EventCodec(registry, reader=release)
        self.event_types = {n.rpartition(".")[2] for n in _payload_names(release)}


@functools.cache
def _codecs(release_name: str) -> _Codecs:
    return _Codecs(REGISTRY, REGISTRY.release(release_name))


def _check_both_ways(codecs: _Codecs, envelope: Envelope) -> None:
    release, current = codecs.release, codecs.current
    if envelope.event_type not in codecs.event_types:
        with pytest.raises(DecodeError):  # a newer event type: old readers refuse it loudly
            codecs.old_reader.decode(codecs.new_writer.encode(envelope))
        return
    backward = codecs.new_writer.decode(codecs.old_writer.encode(envelope))
    assert _project(backward, release) == _project(envelope, release)
    forward = codecs.old_reader.decode(codecs.new_writer.encode(envelope))
    assert _project(forward, release) == _project(envelope, release)
    same = codecs.old_reader.decode(codecs.old_writer.encode(envelope))
    assert _project(forward, current) == _project(same, current)


@pytest.mark.parametrize(("release", "event_type"), CASES, ids=lambda v: getattr(v, "name", v))
@EXAMPLES
@given(data=st.data())
def test_data_crosses_between_release_and_current(
    release: SchemaSet, event_type: str, data: st.DataObject
) -> None:
    _check_both_ways(_codecs(release.name), data.draw(envelopes(PAYLOADS[event_type])))


# --- the machinery, on a release that really differs ----------------------------------


def _edit(path: Path, change: Any) -> None:
    record = json.loads(path.read_text())
    change(record)
    path.write_text(json.dumps(record))


def _make_older(root: Path) -> SchemaRegistry:
    """A v1 without TaskStarted.node_id and without the ExecutionOwnershipTaken event."""
    shutil.copytree(schemas_root() / "current", root / "current")
    v1 = root / "releases" / "v1"
    shutil.copytree(schemas_root() / "current", v1)
    _edit(v1 / "TaskStarted.avsc", lambda r: r.update(fields=r["fields"][:-1]))
    union = json.loads((v1 / "Envelope.avsc").read_text())["fields"][-1]["type"]
    cut = union.index("ExecutionOwnershipTaken")  # it and every payload added after it
    _edit(v1 / "Envelope.avsc", lambda r: r["fields"][-1].update(type=union[:cut]))
    for name in union[cut:]:
        (v1 / f"{name}.avsc").unlink()
    return SchemaRegistry.load(root)


@pytest.fixture(scope="module")
def older(tmp_path_factory: pytest.TempPathFactory) -> SchemaRegistry:
    return _make_older(tmp_path_factory.mktemp("older"))


@pytest.fixture(scope="module")
def older_codecs(older: SchemaRegistry) -> _Codecs:
    return _Codecs(older, older.releases[0])


def test_an_older_release_resolves_both_ways(older: SchemaRegistry) -> None:
    release = older.releases[0]
    assert release.fingerprint != older.current.fingerprint
    assert compatibility_problems(release, older.current) == []
    payload = TaskStarted(task_id="t", attempt=2, node_id="node-b")
    envelope = Envelope(execution_id="e", pipeline_id="p", sequence=1, epoch=1, payload=payload)
    old_data = EventCodec(older, writer=release).encode(envelope)
    assert old_data[2:10] == release.fingerprint.to_bytes(8, "little")
    assert EventCodec(older).decode(old_data).payload == TaskStarted(task_id="t", attempt=2)
    forward = EventCodec(older, reader=release).decode(EventCodec(older).encode(envelope))
    assert forward.payload == TaskStarted(task_id="t", attempt=2)
    reader = EventCodec(older)
    for end in range(len(old_data)):  # resolution goes through fastavro: same errors
        with pytest.raises(DecodeError):
            reader.decode(old_data[:end])
    with pytest.raises(DecodeError, match="trailing"):
        reader.decode(old_data + b"\x00")


@EXAMPLES
@given(envelope=envelopes(), data=st.data())
def test_resolving_a_flipped_byte_never_leaks_a_raw_error(
    older_codecs: _Codecs, envelope: Envelope, data: st.DataObject
) -> None:
    if envelope.event_type not in older_codecs.event_types:
        return
    message = bytearray(older_codecs.old_writer.encode(envelope))
    index = data.draw(st.integers(10, len(message) - 1))
    message[index] ^= data.draw(st.integers(1, 255))
    try:
        decoded = older_codecs.new_writer.decode(bytes(message))
    except DecodeError:
        return
    assert isinstance(decoded, Envelope)


@EXAMPLES
@given(envelope=envelopes())
def test_an_older_release_round_trips_any_event(older_codecs: _Codecs, envelope: Envelope) -> None:
    _check_both_ways(older_codecs, envelope)


def test_structural_check_catches_breaking_changes(tmp_path: Path) -> None:
    registry = _make_older(tmp_path)
    v1 = registry.releases[0].directory
    _edit(v1 / "TaskFailed.avsc", lambda r: r["fields"].append({"name": "code", "type": "long"}))
    _edit(v1 / "TaskScheduled.avsc", lambda r: r["fields"][0].update(type="long"))
    gone = {"type": "record", "name": "Gone", "namespace": NAMESPACE, "fields": []}
    (v1 / "Gone.avsc").write_text(json.dumps(gone))
    assert sorted(compatibility_problems(load_schema_set(v1), registry.current)) == [
        "TaskFailed.code was removed without a default",
        "TaskScheduled.task_id changed type: long -> string",
        "record Gone was removed",
    ]


def test_release_publishes_current_as_the_next_version(tmp_path: Path) -> None:
    shutil.copytree(schemas_root() / "current", tmp_path / "current")
    shutil.copytree(schemas_root() / "releases", tmp_path / "releases")
    released = sorted(p.name for p in (tmp_path / "releases").iterdir())
    with pytest.raises(SchemaError, match="nothing to release"):
        publish_release(tmp_path)
    _edit(
        tmp_path / "current" / "TaskSkipped.avsc",
        lambda r: r["fields"].append(
            {"name": "note", "type": ["null", "string"], "default": None, "doc": "A note."}
        ),
    )
    published = publish_release(tmp_path)
    next_name = f"v{len(released) + 1}"
    assert published.name == next_name
    assert (tmp_path / "releases" / next_name / FINGERPRINT_FILE).read_text().strip() == (
        published.fingerprint_hex
    )
    registry = SchemaRegistry.load(tmp_path)
    assert [s.name for s in registry.releases] == [*released, next_name]
    assert registry.current.fingerprint == published.fingerprint
    assert compatibility_problems(registry.releases[0], registry.current) == []


# --- loading --------------------------------------------------------------------------


def test_a_misnamed_file_is_refused(tmp_path: Path) -> None:
    shutil.copytree(schemas_root() / "current", tmp_path / "s")
    (tmp_path / "s" / "TaskStarted.avsc").rename(tmp_path / "s" / "Started.avsc")
    with pytest.raises(
        SchemaError, match=r"Started\.avsc: holds orchestrator\.events\.TaskStarted"
    ):
        load_schema_set(tmp_path / "s")


def test_a_missing_record_is_refused(tmp_path: Path) -> None:
    shutil.copytree(schemas_root() / "current", tmp_path / "s")
    (tmp_path / "s" / "BlobRef.avsc").unlink()
    with pytest.raises(SchemaError, match="does not compose"):
        load_schema_set(tmp_path / "s")


def test_a_file_that_is_not_json_is_refused(tmp_path: Path) -> None:
    shutil.copytree(schemas_root() / "current", tmp_path / "s")
    (tmp_path / "s" / "BlobRef.avsc").write_text("{")
    with pytest.raises(SchemaError, match=r"BlobRef\.avsc: not readable JSON"):
        load_schema_set(tmp_path / "s")
