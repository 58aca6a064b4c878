"""The snapshot store port, the object key layout, and the in-memory adapter.

A store keeps opaque snapshot objects under keys; it knows nothing of their content.
Adapters: :class:`MemorySnapshotStore` (here), ``FilesystemSnapshotStore``
(``snapshots.filesystem``) and ``S3SnapshotStore`` (``snapshots.s3``). All pass the
same contract suite. Keys are relative to the store's own root (S3 prefix, base path)
and are made by :class:`KeyLayout`, so one execution's snapshot at one sequence always
lands under the same key: writing it again after a crash overwrites, never duplicates.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol, runtime_checkable
from urllib.parse import quote

from orchestrator.snapshots.errors import SnapshotConfigError, SnapshotNotFound

logger = logging.getLogger(__name__)

SUFFIX = ".snap"


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """The seed's S3 ``lifecycle`` block: days until Glacier, days until deletion."""

    transition_to_glacier: int | None = None
    expiration: int | None = None

    def __post_init__(self) -> None:
        for name in ("transition_to_glacier", "expiration"):
            days = getattr(self, name)
            if days is not None and days < 1:
                raise SnapshotConfigError(f"lifecycle.{name}", f"{days} days: must be >= 1")

    @property
    def empty(self) -> bool:
        return self.transition_to_glacier is None and self.expiration is None

    def rules(self) -> tuple[str, ...]:
        """The configured rules as short labels, e.g. ``("expiration=365d",)``."""
        labels = []
        if self.transition_to_glacier is not None:
            labels.append(f"transition_to_glacier={self.transition_to_glacier}d")
        if self.expiration is not None:
            labels.append(f"expiration={self.expiration}d")
        return tuple(labels)


@dataclass(frozen=True, slots=True)
class LifecycleReport:
    """What a store did with lifecycle settings: which rules it applied, which not, why."""

    store: str
    applied: tuple[str, ...]
    not_applied: tuple[str, ...]
    detail: str

    @property
    def complete(self) -> bool:
        """Every configured rule is in force."""
        return not self.not_applied


@runtime_checkable
class SnapshotStore(Protocol):
    """Where snapshot objects live. Writes are atomic: a reader sees all or nothing."""

    @property
    def name(self) -> str:
        """Where this store keeps objects, e.g. ``s3://bucket/prefix`` (index, logs)."""
        ...

    async def put(self, key: str, data: bytes) -> None:
        """Store ``data`` under ``key`` atomically, replacing any object there."""
        ...

    async def get(self, key: str) -> bytes:
        """The object's bytes; :class:`SnapshotNotFound` if there is none."""
        ...

    async def delete(self, keys: Iterable[str]) -> None:
        """Delete these objects; a key with no object is not an error."""
        ...

    async def list(self, prefix: str = "") -> list[str]:
        """Every key starting with ``prefix``, sorted."""
        ...

    async def apply_lifecycle(self, lifecycle: Lifecycle) -> LifecycleReport:
        """Apply expiration/transition rules where the backend supports them, else report."""
        ...

    def uri(self, key: str) -> str:
        """The object's full address, for messages."""
        ...


def _segment(value: str) -> str:
    """An id as one safe path segment: ``/`` and other unsafe characters escaped."""
    if not value:
        raise ValueError("an empty id cannot name a snapshot path segment")
    escaped = quote(value, safe="-_.@=+")
    return "%2E" + escaped[1:] if escaped.startswith(".") else escaped


@dataclass(frozen=True, slots=True)
class KeyLayout:
    """Deterministic object keys (the seed's ``organization``: by_pipeline, by_date).

    ``[<yyyy>/<mm>/<dd>/][<pipeline_id>/]<execution_id>/<sequence:012d>.snap``; the date
    is the execution's creation date, so every snapshot of one execution shares one
    folder and a key never depends on when the snapshot happened to be taken.
    """

    by_pipeline: bool = True
    by_date: bool = False

    def execution_prefix(
        self, pipeline_id: str, execution_id: str, created_at: datetime | None
    ) -> str:
        parts: list[str] = []
        if self.by_date:
            if created_at is None:
                raise ValueError(f"execution {execution_id}: by_date needs its created_at")
            parts.append(created_at.strftime("%Y/%m/%d"))
        if self.by_pipeline:
            parts.append(_segment(pipeline_id))
        parts.append(_segment(execution_id))
        return "/".join(parts) + "/"

    def key(
        self, pipeline_id: str, execution_id: str, created_at: datetime | None, sequence: int
    ) -> str:
        if sequence < 0:
            raise ValueError(f"sequence {sequence} < 0")
        prefix = self.execution_prefix(pipeline_id, execution_id, created_at)
        return f"{prefix}{sequence:012d}{SUFFIX}"


def check_key(key: str) -> str:
    """Refuse keys that could escape a store's root or that no layout makes."""
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"invalid snapshot key {key!r}")
    return key


class MemorySnapshotStore:
    """Objects in a dict: for tests, the embedded default, and benchmarks."""

    def __init__(self, label: str = "default") -> None:
        self._objects: dict[str, bytes] = {}
        self._label = label

    @property
    def name(self) -> str:
        return f"memory://{self._label}"

    def uri(self, key: str) -> str:
        return f"{self.name}/{key}"

    async def put(self, key: str, data: bytes) -> None:
        self._objects[check_key(key)] = bytes(data)

    async def get(self, key: str) -> bytes:
        try:
            return self._objects[check_key(key)]
        except KeyError:
            raise SnapshotNotFound(self.name, key) from None

    async def delete(self, keys: Iterable[str]) -> None:
        for key in keys:
            self._objects.pop(check_key(key), None)

    async def list(self, prefix: str = "") -> list[str]:
        return sorted(k for k in self._objects if k.startswith(prefix))

    async def apply_lifecycle(self, lifecycle: Lifecycle) -> LifecycleReport:
        return unsupported_lifecycle(self.name, lifecycle)


def unsupported_lifecycle(store: str, lifecycle: Lifecycle) -> LifecycleReport:
    """The report (and one warning) of a store that cannot expire objects by itself."""
    if lifecycle.empty:
        return LifecycleReport(store, (), (), "no lifecycle rules configured")
    detail = (
        f"{store} cannot expire or transition objects by itself: lifecycle rules "
        f"{', '.join(lifecycle.rules())} are NOT applied; "
        "run `orchestrator-state snapshots prune` for retention"
    )
    logger.warning("%s", detail)
    return LifecycleReport(store, (), lifecycle.rules(), detail)


BLOBS = "blobs/"
"""Claim-checked user data lives under ``<parent of the snapshot prefix>/blobs/``."""


def blob_prefix(snapshot_prefix: str) -> str:
    """Where the blob store of a bucket's snapshot prefix writes its ``blobs/...`` keys:
    the parent of the snapshot prefix, so that the blobs live events still reference
    sit beside the snapshots, never under the prefix a lifecycle rule expires."""
    parent = snapshot_prefix.strip("/").rpartition("/")[0]
    return f"{parent}/" if parent else ""


def sse_arguments(server_side_encryption: str | None, kms_key_id: str | None) -> dict[str, str]:
    """The server-side encryption arguments of an S3 PUT (the S3 backend's ``encryption``
    block), the same for snapshots and blobs: a KMS key alone means ``aws:kms``."""
    arguments: dict[str, str] = {}
    if server_side_encryption or kms_key_id:
        arguments["ServerSideEncryption"] = server_side_encryption or "aws:kms"
    if kms_key_id:
        arguments["SSEKMSKeyId"] = kms_key_id
    return arguments


def lifecycle_covers_blobs(snapshot_prefix: str) -> bool:
    """True when a rule over ``snapshot_prefix`` would also match blob keys."""
    prefix = snapshot_prefix.strip("/") + "/" if snapshot_prefix.strip("/") else ""
    return (blob_prefix(prefix) + BLOBS).startswith(prefix)
