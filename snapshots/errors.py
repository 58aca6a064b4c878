"""Errors of the snapshot layer.

    OrchestratorStateError                  (events.errors)
    └── SnapshotError
        ├── SnapshotCorrupt                 an object that cannot be trusted: unknown schema,
        │                                   failed auth tag, bad checksum, truncation, no key
        ├── SnapshotNotFound                no object under that key
        ├── SnapshotStoreError              the store failed (``retriable`` says whether to retry)
        ├── SnapshotConfigError             configuration that cannot work (names the key)
        └── SnapshotterFailed               the snapshotter stopped (names where and why)

Restore treats ``SnapshotCorrupt`` and ``SnapshotNotFound`` as "use an older snapshot or
replay": a damaged snapshot costs time, never a wrong state.
"""

from __future__ import annotations

from dataclasses import KW_ONLY, field

from orchestrator.events import AtRecord, OrchestratorStateError, error_fields


class SnapshotError(OrchestratorStateError):
    """An error in the snapshot codec, stores, snapshotter, restore or retention."""


@error_fields("snapshot {object_key!r} is unusable: {reason}")
class SnapshotCorrupt(SnapshotError):
    """A snapshot object that does not decode to a state we can trust."""

    object_key: str
    reason: str


@error_fields("no snapshot {object_key!r} in the {store} store")
class SnapshotNotFound(SnapshotError):
    """No snapshot object under ``object_key`` (deleted, or never written)."""

    store: str
    object_key: str


@error_fields("{store} store: {operation} {object_key!r} failed: {reason}")
class SnapshotStoreError(SnapshotError):
    """The store refused or failed an operation; ``retriable`` tells whether to try again."""

    store: str
    operation: str
    object_key: str
    reason: str
    _: KW_ONLY
    retriable: bool = field()  # required (else the root's class attribute is its default)


@error_fields("{key}: {reason}")
class SnapshotConfigError(SnapshotError):
    """Snapshot configuration that cannot work; ``key`` names the setting."""

    key: str
    reason: str


@error_fields("snapshotter failed{_where}: {reason}")
class SnapshotterFailed(SnapshotError, AtRecord):
    """The snapshotter cannot go on; it stops so that the platform restarts it."""

    reason: str
    _: KW_ONLY
    retriable: bool = field()  # required (else the root's class attribute is its default)
