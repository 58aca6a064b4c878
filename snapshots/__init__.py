"""Snapshots: the snapshotter, stores, codec, restore and retention (design §5).

A snapshot is one execution's folded state at a known sequence and Kafka position,
Avro-encoded, compressed above a size (zstd, gzip, lz4 or snappy), optionally
AES-256-GCM encrypted, stored under a deterministic key and indexed in PostgreSQL.
Restore = newest usable snapshot at or before the target (``SnapshotBaseReader``) + the
archived events after it, folded by the history service (``events.History``;
``snapshot_history`` builds one over snapshots): always equal to the full fold.
``S3SnapshotStore`` (``snapshots.s3``), the PostgreSQL adapters (``snapshots.postgres``)
and the snapshotter (``snapshots.snapshotter``) import their drivers, so this facade
resolves them on first use: importing it loads neither asyncpg nor boto3.
"""

from typing import TYPE_CHECKING

from orchestrator.events import (  # the key ring lives in events (user data uses it too)
    ACTIVE_KEY_ENV,
    KEYS_ENV,
    KeyConfigError,
    KeyRing,
    NothingToRestore,
    generate_key,
)
from orchestrator.snapshots.bases import SnapshotBaseReader, snapshot_history
from orchestrator.snapshots.blobretention import (
    BlobListing,
    BlobRetention,
    BlobRun,
    StoredBlob,
    run_blob_retention,
)
from orchestrator.snapshots.codec import (
    AesGcmEncryption,
    AvroStateConverter,
    EncodedSnapshot,
    Snapshot,
    SnapshotCodec,
    SnapshotHeader,
    ZstdCompression,
    codec_from_settings,
)
from orchestrator.snapshots.errors import (
    SnapshotConfigError,
    SnapshotCorrupt,
    SnapshotError,
    SnapshotNotFound,
    SnapshotStoreError,
    SnapshotterFailed,
)
from orchestrator.snapshots.filesystem import FilesystemSnapshotStore
from orchestrator.snapshots.index import MemorySnapshotIndex, SnapshotIndex, SnapshotRecord
from orchestrator.snapshots.policy import RetentionPolicy, SnapshotPolicy
from orchestrator.snapshots.retention import (
    Decision,
    RetentionPlan,
    apply_plan,
    earliest_offsets,
    plan_retention,
    run_retention,
)
from orchestrator.snapshots.store import (
    KeyLayout,
    Lifecycle,
    LifecycleReport,
    MemorySnapshotStore,
    SnapshotStore,
    blob_prefix,
    sse_arguments,
)
from orchestrator.snapshots.stores import open_store
from orchestrator.snapshots.writer import PendingSnapshot, SnapshotWriter

if TYPE_CHECKING:  # at run time through __getattr__ below
    from orchestrator.snapshots.postgres import PostgresSnapshotIndex
    from orchestrator.snapshots.s3 import S3SnapshotStore, make_client
    from orchestrator.snapshots.settings import SnapshotterSettings
    from orchestrator.snapshots.snapshotter import Snapshotter, run_snapshotter

# The PostgreSQL adapters, the S3 store and the snapshotter import their drivers
# (asyncpg, boto3): importing this package loads them only when one is asked for.
_LAZY = {
    "PostgresSnapshotIndex": "orchestrator.snapshots.postgres",
    "S3SnapshotStore": "orchestrator.snapshots.s3",
    "make_client": "orchestrator.snapshots.s3",
    "Snapshotter": "orchestrator.snapshots.snapshotter",
    "SnapshotterSettings": "orchestrator.snapshots.settings",
    "run_snapshotter": "orchestrator.snapshots.snapshotter",
}

__all__ = [
    "ACTIVE_KEY_ENV",
    "KEYS_ENV",
    "AesGcmEncryption",
    "AvroStateConverter",
    "BlobListing",
    "BlobRetention",
    "BlobRun",
    "Decision",
    "EncodedSnapshot",
    "FilesystemSnapshotStore",
    "KeyConfigError",
    "KeyLayout",
    "KeyRing",
    "Lifecycle",
    "LifecycleReport",
    "MemorySnapshotIndex",
    "MemorySnapshotStore",
    "NothingToRestore",
    "PendingSnapshot",
    "PostgresSnapshotIndex",
    "RetentionPlan",
    "RetentionPolicy",
    "S3SnapshotStore",
    "Snapshot",
    "SnapshotBaseReader",
    "SnapshotCodec",
    "SnapshotConfigError",
    "SnapshotCorrupt",
    "SnapshotError",
    "SnapshotHeader",
    "SnapshotIndex",
    "SnapshotNotFound",
    "SnapshotPolicy",
    "SnapshotRecord",
    "SnapshotStore",
    "SnapshotStoreError",
    "SnapshotWriter",
    "Snapshotter",
    "SnapshotterFailed",
    "SnapshotterSettings",
    "StoredBlob",
    "ZstdCompression",
    "apply_plan",
    "blob_prefix",
    "codec_from_settings",
    "earliest_offsets",
    "generate_key",
    "make_client",
    "open_store",
    "plan_retention",
    "run_blob_retention",
    "run_retention",
    "run_snapshotter",
    "snapshot_history",
    "sse_arguments",
]


def __getattr__(name: str) -> object:
    """The names of ``_LAZY``, imported from their module on first use."""
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(module), name)
