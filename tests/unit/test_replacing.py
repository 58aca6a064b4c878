"""``events.replacing``: a reader sees the old file or the whole new one, never a part."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.events import replacing


def test_the_new_file_replaces_the_old_one_when_the_block_ends(tmp_path: Path) -> None:
    target = tmp_path / "dump"
    target.write_bytes(b"old")
    with replacing(target) as out:
        out.write(b"new")
        assert target.read_bytes() == b"old"
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["dump"]


def test_a_failed_write_keeps_the_old_file_and_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "dump"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), replacing(target, fsync=False) as out:
        out.write(b"half")
        raise RuntimeError("disk full")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["dump"]
