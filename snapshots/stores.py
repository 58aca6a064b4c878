"""Opening a snapshot store by the URL the seed writes: ``s3://``, ``file://``, ``memory://``.

Apart from ``store`` (the port and its memory adapter) so that the adapters, which
import ``store``, are imported by this module and not the other way round.
"""

from __future__ import annotations

from typing import cast

from orchestrator.snapshots._fileformat import FileFormat
from orchestrator.snapshots.errors import SnapshotConfigError
from orchestrator.snapshots.filesystem import FilesystemSnapshotStore
from orchestrator.snapshots.store import MemorySnapshotStore, SnapshotStore


def open_store(
    url: str,
    *,
    endpoint_url: str | None = None,
    region: str | None = None,
    server_side_encryption: str | None = None,
    kms_key_id: str | None = None,
    file_format: str = "raw",
) -> SnapshotStore:
    """The store a URL names, as the seed writes it: ``s3://bucket[/prefix]``,
    ``file://path`` (or a plain path), ``memory://label``. S3 options apply to S3 only,
    ``file_format`` (``raw``, ``json``, ``msgpack``) to the filesystem only."""
    if url.startswith("s3://"):
        from orchestrator.snapshots.s3 import S3SnapshotStore  # boto3: only when asked

        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        return S3SnapshotStore(
            bucket,
            prefix,
            endpoint_url=endpoint_url,
            region=region,
            server_side_encryption=server_side_encryption,
            kms_key_id=kms_key_id,
        )
    if url.startswith("memory://"):
        return MemorySnapshotStore(url.removeprefix("memory://") or "default")
    if url.startswith("file://") or "://" not in url:
        path = url.removeprefix("file://")
        if not path:
            raise SnapshotConfigError("snapshots.storage", f"{url!r} names no folder")
        return FilesystemSnapshotStore(path, cast("FileFormat", file_format))
    raise SnapshotConfigError(
        "snapshots.storage", f"{url!r}: expected s3://bucket[/prefix], file://path or memory://"
    )
