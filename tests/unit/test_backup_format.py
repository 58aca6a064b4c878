"""The backup's files: chunks of bounded size, checksums checked before reading, and a
manifest that names what it is."""

from __future__ import annotations

import pytest

from orchestrator.backup import (
    EVENT_SCHEMA,
    MANIFEST,
    BackupFormatError,
    Manifest,
    read_file,
    read_manifest,
)
from orchestrator.backup._format import ChunkWriter
from orchestrator.snapshots import MemorySnapshotStore


def _event(offset: int) -> dict[str, object]:
    return {
        "topic": "t", "partition": 0, "offset": offset, "key": b"e", "execution_id": "e",
        "sequence": offset + 1, "event_id": f"id-{offset}", "event_type": "TaskStarted",
        "outcome": "applied", "source": "archive", "value": b"\xc3\x01" + bytes(20),
    }  # fmt: skip


async def test_chunks_are_bounded_and_read_back_in_order() -> None:
    store = MemorySnapshotStore()
    writer = ChunkWriter(store, "events/pipeline", "events", EVENT_SCHEMA, max_records=4)
    for offset in range(10):
        await writer.add(_event(offset), 30)
    await writer.flush()
    assert [e.records for e in writer.entries] == [4, 4, 2]
    assert await store.list("events/") == [f"events/pipeline-0000{i}.avro" for i in range(3)]
    offsets = [r["offset"] for e in writer.entries for r in await read_file(store, e)]
    assert offsets == list(range(10))


async def test_a_damaged_file_is_refused_before_it_is_read() -> None:
    store = MemorySnapshotStore()
    writer = ChunkWriter(store, "events/pipeline", "events", EVENT_SCHEMA)
    await writer.add(_event(0), 30)
    await writer.flush()
    entry = writer.entries[0]
    data = bytearray(await store.get(entry.path))
    data[-3] ^= 0xFF
    await store.put(entry.path, bytes(data))
    with pytest.raises(BackupFormatError, match="is damaged"):
        await read_file(store, entry)


async def test_the_manifest_names_what_it_is() -> None:
    manifest = Manifest("2026-01-01T00:00:00+00:00", {}, {}, {"t:0": 3}, {"events": 3}, {"e": 3})
    assert Manifest.from_json(manifest.to_json()) == manifest
    store = MemorySnapshotStore()
    with pytest.raises(BackupFormatError, match="did not finish"):
        await read_manifest(store)
    await store.put(MANIFEST, b'{"format": "something-else"}')
    with pytest.raises(BackupFormatError, match="not an orchestrator-state-backup"):
        await read_manifest(store)
    await store.put(
        MANIFEST, manifest.to_json().replace(b'"format_version": 1', b'"format_version": 9')
    )
    with pytest.raises(BackupFormatError, match="format version 9"):
        await read_manifest(store)


async def test_data_keys_round_trip_wrapped_and_erased_rows_stay_keyless() -> None:
    from datetime import UTC, datetime

    from orchestrator.backup import DATA_KEY_SCHEMA

    now = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)
    rows = [
        {"scope": "exec-a", "master_key_id": "m1", "wrapped_key": b"\x01" * 60,
         "created_at": now, "erased_at": None},
        {"scope": "exec-b", "master_key_id": None, "wrapped_key": None,
         "created_at": now, "erased_at": now},
    ]  # fmt: skip
    store = MemorySnapshotStore()
    writer = ChunkWriter(store, "keys/part", "data_keys", DATA_KEY_SCHEMA)
    for row in rows:
        await writer.add(row, 100)
    await writer.flush()
    assert [e.path for e in writer.entries] == ["keys/part-00000.avro"]
    assert [r for e in writer.entries for r in await read_file(store, e)] == rows
