"""Backup and restore of a deployment's history (the seed's "configure backup strategy").

``take_backup(deployment, dest)`` writes the event history (archive, falling back to
the Kafka log), the snapshots, the claim-checked blobs the events reference and the
wrapped data keys as Avro object container files plus a manifest into a
snapshot-store-like folder (``dest``: a directory or an S3 prefix, opened with
``snapshots.open_store``);
``restore_backup(deployment, src)`` rebuilds an empty deployment from it. The CLI's
``orchestrator-state backup`` and ``restore-backup`` call these.
"""

from orchestrator.backup._backup import blob_refs, take_backup
from orchestrator.backup._format import (
    BLOB_SCHEMA,
    DATA_KEY_SCHEMA,
    EVENT_SCHEMA,
    MANIFEST,
    SNAPSHOT_SCHEMA,
    BackupFormatError,
    FileEntry,
    Manifest,
    read_file,
)
from orchestrator.backup._restore import (
    RestoreReport,
    TargetNotEmpty,
    read_manifest,
    restore_backup,
)
from orchestrator.backup._setup import Deployment, deployment

__all__ = [
    "BLOB_SCHEMA",
    "DATA_KEY_SCHEMA",
    "EVENT_SCHEMA",
    "MANIFEST",
    "SNAPSHOT_SCHEMA",
    "BackupFormatError",
    "Deployment",
    "FileEntry",
    "Manifest",
    "RestoreReport",
    "TargetNotEmpty",
    "blob_refs",
    "deployment",
    "read_file",
    "read_manifest",
    "restore_backup",
    "take_backup",
]
