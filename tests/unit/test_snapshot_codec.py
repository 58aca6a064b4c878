"""The snapshot codec: states round-trip exactly, and nothing damaged decodes."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import io
import json
import random
import shutil
import struct
import zlib
from pathlib import Path

import pytest
from fastavro import schemaless_writer
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.events import KeyRing, generate_key
from orchestrator.events.envelope import Position
from orchestrator.events.fold import Outcome, fold, step
from orchestrator.events.keys import KeyConfigError
from orchestrator.events.simulate import simulate_execution
from orchestrator.events.state import AppliedIds, CheckpointRef, ExecutionState, TaskState
from orchestrator.snapshots._schema import (
    StateSchemas,
    header_schema,
    snapshot_schemas_root,
    state_to_record,
)
from orchestrator.snapshots.codec import (
    AesGcmEncryption,
    AvroStateConverter,
    SnapshotCodec,
    ZstdCompression,
    codec_from_settings,
)
from orchestrator.snapshots.errors import SnapshotConfigError, SnapshotCorrupt

POS = Position("orchestrator.pipeline.events", 3, 1207)


def _state(seed: int = 1, tasks: int = 5, payload_bytes: int = 64) -> ExecutionState:
    events = simulate_execution(
        f"exec_{seed}", random.Random(seed), tasks=tasks, payload_bytes=payload_bytes
    )
    state = fold(events)
    assert state is not None
    return state


def _ring(*kids: str, active: str | None = None) -> KeyRing:
    return KeyRing.parse(",".join(f"{k}:{generate_key()}" for k in kids), active)


@settings(max_examples=60, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), tasks=st.integers(1, 12))
def test_every_simulated_state_round_trips_exactly(seed: int, tasks: int) -> None:
    state = _state(seed, tasks)
    codec = SnapshotCodec()
    snapshot = codec.decode(codec.encode(state, POS, occurred_at=state.updated_at).data, "k")
    assert snapshot.state == state
    assert list(snapshot.state.tasks) == list(state.tasks)  # task order drives summaries
    assert snapshot.header.position == POS
    assert snapshot.header.sequence == state.last_sequence


def test_arbitrary_user_json_round_trips() -> None:
    odd = {"ünï": ["x", 1, 2.5, None, True, {"nested": [1e300, -0.0]}], "": {}}
    task = TaskState(task_id="t/1", inputs=odd, outputs=[odd], metadata="plain", attempts=2)
    state = ExecutionState(
        execution_id="e",
        pipeline_id="p",
        context={"input_data": odd},
        outputs=odd,
        tasks={"t/1": task},
    )
    codec = SnapshotCodec()
    assert codec.decode(codec.encode(state, POS, occurred_at=None).data, "k").state == state


@pytest.mark.parametrize(
    ("record", "cls"),
    [
        ("ExecutionState", ExecutionState),
        ("TaskState", TaskState),
        ("CheckpointRef", CheckpointRef),
    ],
)
def test_state_schema_has_every_field_of_the_state_dataclasses(record: str, cls: type) -> None:
    # A field added to events.state without a schema change would silently vanish
    # from snapshots; this fails first.
    avsc = json.loads((snapshot_schemas_root() / "current" / f"{record}.avsc").read_text())
    # ``applied`` (the fold's event ids, compare=False) is bookkeeping, not state.
    # A snapshot keeps it in two fields of its own: applied_base, applied_event_ids.
    names = [f.name for f in dataclasses.fields(cls) if f.name != "applied"]
    bookkeeping = {"applied_base", "applied_event_ids"}
    assert [f["name"] for f in avsc["fields"] if f["name"] not in bookkeeping] == names


def test_small_bodies_stay_uncompressed_and_large_ones_are_zstd() -> None:
    codec = SnapshotCodec(compression=ZstdCompression(level=3, min_size=1024))
    small = codec.encode(_state(tasks=1, payload_bytes=8), POS, occurred_at=None)
    large = codec.encode(_state(tasks=12, payload_bytes=4000), POS, occurred_at=None)
    assert small.header.raw_size <= 1024 and small.header.compression == "none"
    assert large.header.raw_size > 1024 and large.header.compression == "zstd"
    assert large.header.body_size < large.header.raw_size / 5
    for encoded in (small, large):
        assert SnapshotCodec(compression=None).decode(encoded.data, "k").state is not None


def test_compression_off_writes_raw_bodies() -> None:
    encoded = SnapshotCodec(compression=None).encode(
        _state(tasks=12, payload_bytes=4000), POS, occurred_at=None
    )
    assert encoded.header.compression == "none"


@pytest.mark.parametrize(("level", "min_size"), [(0, 10), (23, 10), (3, -1)])
def test_bad_compression_settings_fail_naming_the_setting(level: int, min_size: int) -> None:
    with pytest.raises(SnapshotConfigError, match="compression"):
        ZstdCompression(level, min_size)


def test_encrypted_snapshots_decrypt_after_key_rotation() -> None:
    state = _state()
    old = _ring("kid1")
    before = SnapshotCodec(encryption=AesGcmEncryption(old)).encode(state, POS, occurred_at=None)
    assert before.header.key_id == "kid1"
    rotated = KeyRing({**old.keys, "kid2": base64.b64decode(generate_key())}, "kid2")
    codec = SnapshotCodec(encryption=AesGcmEncryption(rotated))
    after = codec.encode(state, POS, occurred_at=None)
    assert after.header.key_id == "kid2"
    assert codec.decode(before.data, "old").state == state
    assert codec.decode(after.data, "new").state == state
    plain = SnapshotCodec(compression=None).encode(state, POS, occurred_at=None).data
    sealed = (
        SnapshotCodec(compression=None, encryption=AesGcmEncryption(rotated))
        .encode(state, POS, occurred_at=None)
        .data
    )
    assert b"user_123" in plain and b"user_123" not in sealed


def test_a_key_missing_from_the_ring_is_a_clear_corrupt_snapshot() -> None:
    encoded = SnapshotCodec(encryption=AesGcmEncryption(_ring("kid1"))).encode(
        _state(), POS, occurred_at=None
    )
    for reader in (SnapshotCodec(), SnapshotCodec(encryption=AesGcmEncryption(_ring("other")))):
        with pytest.raises(SnapshotCorrupt, match="kid1") as info:
            reader.decode(encoded.data, "a/b.snap")
        assert info.value.object_key == "a/b.snap"


def test_a_wrong_key_under_the_same_id_fails_the_auth_tag() -> None:
    encoded = SnapshotCodec(encryption=AesGcmEncryption(_ring("kid1"))).encode(
        _state(), POS, occurred_at=None
    )
    with pytest.raises(SnapshotCorrupt, match="authentication tag"):
        SnapshotCodec(encryption=AesGcmEncryption(_ring("kid1"))).decode(encoded.data, "k")


def _rewrite_header(data: bytes, old: bytes, new: bytes) -> bytes:
    """Edit header bytes and recompute the CRC, as a deliberate tamperer would."""
    _magic, _version, length = struct.unpack_from(">4sBI", data)
    end = 9 + length
    prefix = data[:end].replace(old, new, 1)
    assert prefix != data[:end]
    return prefix + struct.pack(">I", zlib.crc32(prefix)) + data[end + 4 :]


def test_the_header_is_authenticated_when_encrypted() -> None:
    ring = _ring("kid1")
    codec = SnapshotCodec(encryption=AesGcmEncryption(ring))
    encoded = codec.encode(_state(), POS, occurred_at=None)
    moved = _rewrite_header(encoded.data, b"exec_1", b"exec_9")
    with pytest.raises(SnapshotCorrupt, match="authentication tag"):
        codec.decode(moved, "k")


def test_an_unencrypted_header_edit_is_caught_by_the_crc() -> None:
    codec = SnapshotCodec()
    data = bytearray(codec.encode(_state(), POS, occurred_at=None).data)
    data[12] ^= 0x01
    with pytest.raises(SnapshotCorrupt, match="CRC"):
        codec.decode(bytes(data), "k")


@settings(max_examples=200, deadline=None)
@given(data=st.data(), encrypt=st.booleans(), payload=st.sampled_from([8, 4000]))
def test_every_single_byte_change_or_truncation_is_detected_or_harmless(
    data: st.DataObject, encrypt: bool, payload: int
) -> None:
    """Damage never yields another state: it is refused, or (a bit zstd's frame does not
    use, e.g. a flag of its header) the snapshot decodes to exactly the original."""
    ring = _ring("kid1")
    codec = SnapshotCodec(encryption=AesGcmEncryption(ring) if encrypt else None)
    blob = codec.encode(_state(tasks=4, payload_bytes=payload), POS, occurred_at=None).data
    if data.draw(st.booleans(), label="truncate"):
        damaged = blob[: data.draw(st.integers(0, len(blob) - 1), label="length")]
    else:
        at = data.draw(st.integers(0, len(blob) - 1), label="at")
        flip = data.draw(st.integers(1, 255), label="xor")
        damaged = blob[:at] + bytes([blob[at] ^ flip]) + blob[at + 1 :]
    try:
        decoded = codec.decode(damaged, "p/e/000000000001.snap")
    except SnapshotCorrupt as refused:
        assert refused.object_key == "p/e/000000000001.snap"
    else:
        assert decoded == codec.decode(blob, "p/e/000000000001.snap")


def test_trailing_bytes_are_refused() -> None:
    codec = SnapshotCodec()
    blob = codec.encode(_state(), POS, occurred_at=None).data
    with pytest.raises(SnapshotCorrupt, match="trailing"):
        codec.decode(blob + b"\0", "k")


def _schema_copy(tmp_path: Path, extra_field: dict[str, object] | None) -> Path:
    root = tmp_path / "snapshot"
    shutil.copytree(snapshot_schemas_root() / "current", root / "current")
    if extra_field is not None:
        path = root / "current" / "ExecutionState.avsc"
        avsc = json.loads(path.read_text())
        avsc["fields"].append(extra_field)
        path.write_text(json.dumps(avsc))
    return root


def test_an_unknown_state_schema_fingerprint_is_refused(tmp_path: Path) -> None:
    root = _schema_copy(tmp_path, {"name": "future", "type": "string", "default": ""})
    writer = SnapshotCodec(AvroStateConverter(StateSchemas.load(root)))
    blob = writer.encode(_state(), POS, occurred_at=None).data
    with pytest.raises(SnapshotCorrupt, match="unknown state schema fingerprint"):
        SnapshotCodec().decode(blob, "k")


def test_a_released_state_schema_still_decodes(tmp_path: Path) -> None:
    old_root = _schema_copy(tmp_path / "old", {"name": "legacy", "type": "long", "default": 0})
    old = SnapshotCodec(AvroStateConverter(StateSchemas.load(old_root)))
    blob = old.encode(_state(), POS, occurred_at=None).data
    root = _schema_copy(tmp_path / "new", None)
    shutil.copytree(old_root / "current", root / "releases" / "v1")
    reader = SnapshotCodec(AvroStateConverter(StateSchemas.load(root)))
    assert reader.decode(blob, "k").state == _state()


def test_the_header_reads_without_keys() -> None:
    encoded = SnapshotCodec(encryption=AesGcmEncryption(_ring("kid1"))).encode(
        _state(), POS, occurred_at=None
    )
    header = SnapshotCodec().read_header(encoded.data, "k")
    assert header == encoded.header


def test_key_ring_from_environment() -> None:
    k1, k2 = generate_key(), generate_key()
    env = {
        "ORCHESTRATOR_SNAPSHOT_KEYS": f"kid1:{k1}, kid2:{k2}",
        "ORCHESTRATOR_SNAPSHOT_ACTIVE_KEY": "kid1",
    }
    ring = KeyRing.from_env(env)
    assert ring is not None and ring.active == "kid1" and set(ring.keys) == {"kid1", "kid2"}
    assert KeyRing.from_env({}) is None
    default_active = KeyRing.from_env({"ORCHESTRATOR_SNAPSHOT_KEYS": f"a:{k1},b:{k2}"})
    assert default_active is not None and default_active.active == "b"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"ORCHESTRATOR_SNAPSHOT_KEYS": "kid1:not-base64!"}, "not base64"),
        ({"ORCHESTRATOR_SNAPSHOT_KEYS": "kid1:" + base64.b64encode(b"short").decode()}, "32"),
        (
            {
                "ORCHESTRATOR_SNAPSHOT_KEYS": f"kid1:{generate_key()}",
                "ORCHESTRATOR_SNAPSHOT_ACTIVE_KEY": "kid9",
            },
            "kid9",
        ),
        ({"ORCHESTRATOR_SNAPSHOT_ACTIVE_KEY": "kid1"}, "no keys"),
        ({"ORCHESTRATOR_SNAPSHOT_KEYS": "justtext"}, "kid:base64key"),
    ],
)
def test_bad_key_configuration_fails_naming_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(KeyConfigError, match=message) as info:
        KeyRing.from_env(env)
    assert info.value.key.startswith("ORCHESTRATOR_SNAPSHOT_")


def test_encrypt_without_keys_fails_at_startup() -> None:
    with pytest.raises(SnapshotConfigError, match="encrypt"):
        codec_from_settings(encrypt=True, keys=None)
    codec = codec_from_settings(compress=False, encrypt=True, keys=_ring("k"))
    assert codec.compression is None and codec.encryption is not None


def test_a_snapshot_keeps_the_applied_event_ids_so_its_readers_judge_as_the_processor() -> None:
    """A forged record at a sequence the snapshot covers is REJECTED (another event id
    at a taken sequence) and a replayed one a DUPLICATE, from the snapshot as from the
    full fold: every reader reaches the processor's verdict."""
    events = simulate_execution("exec_ids", random.Random(5), tasks=4, payload_bytes=16)
    state = fold(events)
    assert state is not None
    codec = SnapshotCodec()
    restored = codec.decode(codec.encode(state, POS, occurred_at=None).data, "k").state
    forged = dataclasses.replace(events[2], event_id="forged", epoch=state.epoch)
    for event, outcome in ((forged, Outcome.REJECTED), (events[2], Outcome.DUPLICATE)):
        assert step(restored, event).outcome is outcome
        assert step(restored, event).reason == step(state, event).reason
    # A state that knows no ids (an older snapshot's) stays as it was: none known.
    old = dataclasses.replace(state, applied=AppliedIds(None, state.last_sequence))
    again = codec.decode(codec.encode(old, POS, occurred_at=None).data, "k").state
    assert again.applied.get(2) is None and again == state


def _format_1(codec: SnapshotCodec, state: ExecutionState) -> bytes:
    """The object an earlier version wrote: the ids inside the body, no ids section."""
    raw = codec.converter.to_bytes(state)  # with the ids
    header = dataclasses.replace(
        codec.encode(state, POS, occurred_at=None).header,
        format_version=1,
        compression="none",
        raw_size=len(raw),
        body_size=len(raw),
        body_sha256=hashlib.sha256(raw).digest(),
    )
    out = io.BytesIO()
    schemaless_writer(out, header_schema(), header.to_record())
    prefix = struct.pack(">4sBI", b"OSNP", 1, len(out.getvalue())) + out.getvalue()
    return prefix + struct.pack(">I", zlib.crc32(prefix)) + raw


@pytest.mark.parametrize("encrypt", [False, True])
def test_snapshots_of_both_formats_give_the_same_verdicts_as_the_full_fold(encrypt: bool) -> None:
    """Format 2 keeps the ids in a section read only when a record needs them; format 1
    objects (ids in the body) still read. Both judge re-delivered and forged records as
    the full fold does."""
    events = simulate_execution("exec_v", random.Random(9), tasks=6, payload_bytes=16)
    state = fold(events)
    assert state is not None
    sealed = SnapshotCodec(encryption=AesGcmEncryption(_ring("kid1")))
    codec = sealed if encrypt else SnapshotCodec()
    blobs = [codec.encode(state, POS, occurred_at=None).data]
    if not encrypt:
        blobs.append(_format_1(codec, state))
    forged = dataclasses.replace(events[3], event_id="forged", epoch=state.epoch)
    for blob in blobs:
        restored = codec.decode(blob, "k").state
        assert restored == state
        for event in (forged, events[3], events[-1]):
            assert step(restored, event).outcome is step(state, event).outcome
            assert step(restored, event).reason == step(state, event).reason
        assert restored.applied.ids() == state.applied.ids()


def test_a_snapshot_keeps_the_ids_of_its_last_sequences_so_it_does_not_grow_with_history() -> None:
    """The ids section is a window (``KEPT_IDS``): a long history's snapshot is the size
    of a short one's, and within the window it judges as the full fold."""
    from orchestrator.snapshots._idsection import KEPT_IDS

    events = simulate_execution("exec_w", random.Random(3), tasks=3, payload_bytes=16)
    state = fold(events)
    assert state is not None
    codec = SnapshotCodec()
    sizes = []
    for length in (KEPT_IDS, 3 * KEPT_IDS):
        ids = [f"{n:08d}-0000-4000-8000-{n:012d}" for n in range(length)]
        long = dataclasses.replace(state, last_sequence=length, applied=AppliedIds(ids, 0))
        data = codec.encode(long, POS, occurred_at=None).data
        sizes.append(len(data))
        restored = codec.decode(data, "k").state
        assert restored.applied.known() == range(length - KEPT_IDS + 1, length + 1)
        assert restored.applied.ids() == ids[-KEPT_IDS:]
        # The snapshot of a state restored from it keeps the same window (no copy of more).
        again = codec.decode(codec.encode(restored, POS, occurred_at=None).data, "k").state
        assert again.applied.ids() == ids[-KEPT_IDS:]
    assert sizes[1] < sizes[0] * 1.05


DATA = Path(__file__).parent / "data"


@pytest.mark.parametrize(("schema", "seed"), [("v2", 6), ("v2", 9), ("v1", 6)])
def test_a_snapshot_written_before_state_schema_v3_still_restores(schema: str, seed: int) -> None:
    """Objects written before v3 (tasks and checkpoints as Avro arrays of records; these
    bytes come from that code: v2 its current schema, v1 its release) are users' data:
    they decode to the full fold's state, keep their event ids, and encode again in the
    current schema to the same state."""
    events = simulate_execution("exec_v2", random.Random(seed), tasks=6, payload_bytes=32)
    state = fold(events)
    assert state is not None and state.checkpoints and state.tasks
    blob = (DATA / f"snapshot_{schema}_seed{seed}.osnp").read_bytes()
    codec = SnapshotCodec()
    old = codec.decode(blob, "k")
    assert old.header.schema_fingerprint != codec.converter.fingerprint
    assert old.state == state
    assert list(old.state.tasks) == list(state.tasks)
    assert old.state.applied.ids() == state.applied.ids()
    again = codec.decode(codec.encode(old.state, POS, occurred_at=None).data, "k")
    assert again.header.schema_fingerprint == codec.converter.fingerprint
    assert again.state == state


def test_the_task_and_checkpoint_blocks_refuse_other_columns() -> None:
    """A v3 block written with other fields is refused, never read into wrong fields:
    restore then uses an older snapshot or replays."""
    state = _state(3, 4)
    codec = SnapshotCodec()
    record = state_to_record(state, with_ids=False)
    tasks = json.loads(record["tasks"])
    tasks["columns"] = [*tasks["columns"][1:], tasks["columns"][0]]
    out = io.BytesIO()
    schemaless_writer(
        out, codec.converter.schemas.current.schema, {**record, "tasks": json.dumps(tasks)}
    )
    with pytest.raises(SnapshotCorrupt, match="columns"):
        codec.converter.from_bytes(out.getvalue(), codec.converter.fingerprint, "k")


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), tasks=st.integers(1, 12))
def test_a_restored_state_encodes_to_the_same_body_bytes_as_the_fold(seed: int, tasks: int) -> None:
    """Restore == fold down to the bytes: the state a snapshot decodes to writes the
    same Avro body as the state the fold built (numbers, timestamps and user data come
    back as they went in)."""
    state = _state(seed, tasks)
    converter = SnapshotCodec().converter
    restored = SnapshotCodec().decode(
        SnapshotCodec().encode(state, POS, occurred_at=None).data, "k"
    )
    assert converter.to_bytes(restored.state, with_ids=False) == converter.to_bytes(
        state, with_ids=False
    )
