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

from orchestrator.events import OrchestratorStateError, where


class SnapshotError(OrchestratorStateError):
    """An error in the snapshot codec, stores, snapshotter, restore or retention."""


class SnapshotCorrupt(SnapshotError):
    """A snapshot object that does not decode to a state we can trust."""

    def __init__(self, object_key: str, reason: str) -> None:
        self.object_key = object_key
        self.reason = reason
        super().__init__(f"snapshot {object_key!r} is unusable: {reason}")


class SnapshotNotFound(SnapshotError):
    """No snapshot object under ``object_key`` (deleted, or never written)."""

    def __init__(self, store: str, object_key: str) -> None:
        self.store = store
        self.object_key = object_key
        super().__init__(f"no snapshot {object_key!r} in the {store} store")


class SnapshotStoreError(SnapshotError):
    """The store refused or failed an operation; ``retriable`` tells whether to try again."""

    def __init__(
        self, store: str, operation: str, object_key: str, reason: str, *, retriable: bool
    ) -> None:
        self.store = store
        self.operation = operation
        self.object_key = object_key
        self.reason = reason
        self.retriable = retriable
        super().__init__(f"{store} store: {operation} {object_key!r} failed: {reason}")


class SnapshotConfigError(SnapshotError):
    """Snapshot configuration that cannot work; ``key`` names the setting."""

    def __init__(self, key: str, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(f"{key}: {reason}")


class SnapshotterFailed(SnapshotError):
    """The snapshotter cannot go on; it stops so that the platform restarts it."""

    def __init__(
        self,
        reason: str,
        *,
        retriable: bool,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
        execution_id: str | None = None,
    ) -> None:
        self.reason = reason
        self.retriable = retriable
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.execution_id = execution_id
        context = where(topic, partition, offset, execution_id)
        super().__init__(f"snapshotter failed{context}: {reason}")
