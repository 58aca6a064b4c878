"""The filesystem backend's ``format`` and ``compression``: what the files on disk hold.

Each format writes its own layout (JSON with readable header fields, MessagePack, or
the raw object), every store reads every layout, and a snapshot decodes the same
whichever format and compression wrote it.
"""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path

import msgpack
import pytest

from orchestrator.config import load_config
from orchestrator.events.envelope import Position
from orchestrator.events.fold import fold
from orchestrator.events.simulate import simulate_execution
from orchestrator.events.state import ExecutionState
from orchestrator.snapshots import open_store
from orchestrator.snapshots.codec import codec_from_settings
from orchestrator.snapshots.errors import SnapshotConfigError, SnapshotCorrupt
from orchestrator.snapshots.filesystem import FilesystemSnapshotStore

FORMATS = ("raw", "json", "msgpack")
POS = Position("orchestrator.pipeline.events", 0, 41)


def _state() -> ExecutionState:
    state = fold(simulate_execution("exec_f", random.Random(5), tasks=3, payload_bytes=300))
    assert state is not None
    return state


@pytest.mark.parametrize("writer", FORMATS)
@pytest.mark.parametrize("reader", FORMATS)
async def test_a_file_written_in_one_format_reads_in_any_other(
    tmp_path: Path, writer: str, reader: str
) -> None:
    state = _state()
    encoded = codec_from_settings(algorithm="gzip", min_size=64).encode(
        state, POS, occurred_at=None
    )
    await FilesystemSnapshotStore(tmp_path, writer).put("p/exec_f/1", encoded.data)  # type: ignore[arg-type]
    data = await FilesystemSnapshotStore(tmp_path, reader).get("p/exec_f/1")  # type: ignore[arg-type]
    assert data == encoded.data
    assert codec_from_settings().decode(data, "p/exec_f/1").state == state


async def test_json_files_show_what_they_hold(tmp_path: Path) -> None:
    state = _state()
    encoded = codec_from_settings(algorithm="lz4", min_size=64).encode(state, POS, occurred_at=None)
    await FilesystemSnapshotStore(tmp_path, "json").put("k", encoded.data)
    doc = json.loads((tmp_path / "k").read_bytes())
    assert doc["orchestrator_snapshot"] == 1
    assert (doc["execution_id"], doc["sequence"]) == (state.execution_id, state.last_sequence)
    assert (doc["compression"], doc["encrypted"]) == ("lz4", False)
    assert base64.b64decode(doc["object"]) == encoded.data


async def test_msgpack_files_hold_the_object_as_binary(tmp_path: Path) -> None:
    state = _state()
    encoded = codec_from_settings(algorithm="snappy", min_size=64).encode(
        state, POS, occurred_at=None
    )
    await FilesystemSnapshotStore(tmp_path, "msgpack").put("k", encoded.data)
    raw = (tmp_path / "k").read_bytes()
    doc = msgpack.unpackb(raw)
    assert doc["object"] == encoded.data and doc["compression"] == "snappy"
    assert len(raw) < len(encoded.data) * 4 // 3  # no base64


async def test_a_damaged_envelope_is_a_corrupt_snapshot(tmp_path: Path) -> None:
    store = FilesystemSnapshotStore(tmp_path, "json")
    await store.put("k", b"OSNP-not-really")
    (tmp_path / "k").write_bytes(
        (tmp_path / "k").read_bytes().replace(b'"object":"', b'"object":"!')
    )
    with pytest.raises(SnapshotCorrupt, match="json snapshot file does not decode"):
        await store.get("k")


def test_pickle_is_refused_by_name() -> None:
    with pytest.raises(SnapshotConfigError, match="pickle"):
        FilesystemSnapshotStore("/tmp/x", "pickle")  # type: ignore[arg-type]
    with pytest.raises(Exception, match="pickle"):
        load_config(
            "state_management:\n  backend: filesystem\n  config:\n    format: pickle\n", "c.yaml"
        )


def test_open_store_passes_the_format_to_the_filesystem_only(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}", file_format="msgpack")
    assert isinstance(store, FilesystemSnapshotStore) and store.file_format == "msgpack"
    assert not isinstance(open_store("memory://m", file_format="json"), FilesystemSnapshotStore)
