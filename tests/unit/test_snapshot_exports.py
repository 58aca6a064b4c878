"""The public face of ``snapshots``: the names other folders may use, and nothing heavy."""

from __future__ import annotations

import subprocess
import sys

from _facades import check_facade

from orchestrator import snapshots


def test_what_other_folders_import_is_exported() -> None:
    check_facade(snapshots, "snapshots")


def test_errors_hang_under_the_product_root() -> None:
    from orchestrator.events.errors import OrchestratorStateError

    for name in (
        "SnapshotCorrupt",
        "SnapshotNotFound",
        "SnapshotStoreError",
        "SnapshotConfigError",
        "SnapshotterFailed",
    ):
        assert issubclass(getattr(snapshots, name), snapshots.SnapshotError)
    assert issubclass(snapshots.SnapshotError, OrchestratorStateError)
    # The history service's error (events.history), re-exported here.
    assert issubclass(snapshots.NothingToRestore, OrchestratorStateError)


def test_importing_snapshots_loads_neither_boto3_nor_asyncpg() -> None:
    # boto3 and asyncpg belong to the S3 and PostgreSQL adapters, imported on demand
    # (aiokafka comes with ``events``, whichever snapshot module is imported).
    code = (
        "import sys, snapshots; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'boto3', 'asyncpg'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_open_store_reads_the_seed_storage_urls(tmp_path: object) -> None:
    from orchestrator.snapshots.s3 import S3SnapshotStore

    s3 = snapshots.open_store("s3://orchestrator-snapshots", endpoint_url="http://127.0.0.1:1")
    assert isinstance(s3, S3SnapshotStore) and s3.name == "s3://orchestrator-snapshots/"
    prefixed = snapshots.open_store("s3://bucket/states/", endpoint_url="http://127.0.0.1:1")
    assert prefixed.uri("p/e/1.snap") == "s3://bucket/states/p/e/1.snap"
    assert isinstance(snapshots.open_store(f"file://{tmp_path}"), snapshots.FilesystemSnapshotStore)
    assert isinstance(snapshots.open_store("memory://x"), snapshots.MemorySnapshotStore)
