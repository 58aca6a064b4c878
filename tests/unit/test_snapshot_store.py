"""The snapshot store contract, run against the memory and filesystem adapters.

The S3 adapter runs the same suite in tests/integration/test_snapshot_s3.py.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.snapshots.filesystem import FilesystemSnapshotStore
from orchestrator.snapshots.store import KeyLayout, MemorySnapshotStore, SnapshotStore
from orchestrator.snapshots.testing import SnapshotStoreContract


class TestMemorySnapshotStore(SnapshotStoreContract):
    @pytest.fixture
    async def store(self) -> AsyncIterator[SnapshotStore]:
        yield MemorySnapshotStore()

    @pytest.fixture
    def lifecycle_supported(self) -> tuple[str, ...]:
        return ()


class TestFilesystemSnapshotStore(SnapshotStoreContract):
    @pytest.fixture(params=["raw", "json", "msgpack"])
    async def store(
        self, tmp_path: Path, request: pytest.FixtureRequest
    ) -> AsyncIterator[SnapshotStore]:
        yield FilesystemSnapshotStore(tmp_path / "state", request.param)

    @pytest.fixture
    def lifecycle_supported(self) -> tuple[str, ...]:
        return ()


async def test_filesystem_writes_leave_no_temporary_files(tmp_path: Path) -> None:
    store = FilesystemSnapshotStore(tmp_path)
    await store.put("p/e/000000000001.snap", b"x" * 100)
    await store.put("p/e/000000000001.snap", b"y" * 10)
    assert sorted(p.name for p in (tmp_path / "p" / "e").iterdir()) == ["000000000001.snap"]


async def test_filesystem_ignores_temporary_files_left_by_a_crash(tmp_path: Path) -> None:
    store = FilesystemSnapshotStore(tmp_path)
    await store.put("p/e/000000000001.snap", b"whole")
    torn = tmp_path / "p" / "e" / ".000000000002.snap.1234.tmp"
    torn.write_bytes(b"half")
    assert await store.list() == ["p/e/000000000001.snap"]


async def test_filesystem_put_failure_is_a_store_error(tmp_path: Path) -> None:
    from orchestrator.snapshots.errors import SnapshotStoreError

    (tmp_path / "p").write_bytes(b"a file where a folder should be")
    store = FilesystemSnapshotStore(tmp_path)
    with pytest.raises(SnapshotStoreError) as info:
        await store.put("p/e/000000000001.snap", b"x")
    assert info.value.object_key == "p/e/000000000001.snap" and info.value.operation == "put"


def test_layout_follows_the_seed_organization_settings() -> None:
    created = datetime(2024, 1, 15, 23, 59, tzinfo=UTC)
    assert (
        KeyLayout().key("research", "exec_1", created, 100) == "research/exec_1/000000000100.snap"
    )
    assert (
        KeyLayout(by_pipeline=True, by_date=True).key("research", "exec_1", created, 5)
        == "2024/01/15/research/exec_1/000000000005.snap"
    )
    assert (
        KeyLayout(by_pipeline=False).key("research", "exec_1", None, 5)
        == "exec_1/000000000005.snap"
    )
    with pytest.raises(ValueError, match="created_at"):
        KeyLayout(by_date=True).key("research", "exec_1", None, 5)


def test_layout_keys_sort_by_sequence() -> None:
    layout = KeyLayout()
    keys = [layout.key("p", "e", None, s) for s in (1, 99, 100, 10_000, 123_456_789)]
    assert sorted(keys) == keys
    assert all(k.startswith(layout.execution_prefix("p", "e", None)) for k in keys)
