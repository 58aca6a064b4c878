"""Blob retention: deleting claim-checked blobs that nothing can still read.

A blob is deleted only when every one of these holds (the safety rule):

1. its key is a content address this project writes (``blobs/<2 hex>/<sha256>``);
   anything else in the store is never touched;
2. it was last written more than ``grace`` ago (``checkpointing.storage.retention.
   blob_grace_hours``, default 24 h): a writer puts the blob *before* it appends the
   event naming it, and the processor archives that event a little later, so a write
   in flight or a processor lagging less than the grace keeps its blobs. Writing the
   same bytes again re-puts the object and so renews its time;
3. it was last written before Kafka's horizon, ``now - grace - lifetime``, where
   ``lifetime`` is the longest any record may stay in a topic that can name a blob
   (``retention.ms`` plus ``segment.ms``, the largest over the pipeline and shared
   topics, their DLQs and the task feed). A record Kafka still holds can be read again
   (a rebuild folds the log again, restore reads the tail after a snapshot, a
   processor may not have reached it yet), and it was appended within the grace of
   the put of each blob it names (every write puts, then appends; a marker copied
   without a put, as a fork does, is covered by rule 4 once archived). With infinite
   Kafka retention (``retention.ms`` -1), or when the lifetime is unknown (Kafka not
   asked), no blob is old enough: nothing is deleted, and the plan says why;
4. nothing still readable references its sha256: no ``$blob`` marker in the archive of
   an execution still in the read model (or the shared-event archive), in a shared
   variable's value, in a dead letter's raw record (it may be replayed), nor in the
   state of any snapshot this run keeps. So every kept execution stays restorable with
   its blobs: one still in the read model through its archive, a retired one through
   its kept terminal snapshot;
5. just before deleting, its time is read again: one re-written since the listing
   (the same content put by a new write) is kept. What remains is a race of
   milliseconds: a new write of the very same bytes landing between that check and
   the delete loses its blob, and reading it then fails with an error (blobs are
   sha256-verified), never with wrong data.

Memory stays bounded: the store is listed a page at a time, each page is checked with
indexed SQL (``projections.referenced_blobs``), and the digests kept snapshots
reference go to a session table (read only when a page has a candidate the
database does not already keep, and before anything is deleted: if one cannot be
read, the run deletes no blob and says why).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from orchestrator.events import BLOB_URI_PATTERN, state_dict
from orchestrator.snapshots.codec import SnapshotCodec
from orchestrator.snapshots.index import SnapshotRecord
from orchestrator.snapshots.store import SnapshotStore

if TYPE_CHECKING:  # the read-model side (asyncpg) is imported only when a run needs it
    from orchestrator.projections import ReadModelTables

logger = logging.getLogger(__name__)

_KEY = re.compile(r"(?:^|/)blobs/([0-9a-f]{2})/([0-9a-f]{64})$")
_URI = re.compile(BLOB_URI_PATTERN)


@dataclass(frozen=True, slots=True)
class StoredBlob:
    """One object of a blob store, as its listing shows it."""

    key: str
    """The store's own key (S3 object key, or path relative to the root)."""
    modified: datetime
    size: int

    @property
    def sha256(self) -> str | None:
        """The content address, or ``None`` for an object this project did not write."""
        match = _KEY.search(self.key)
        if match is None or not match.group(2).startswith(match.group(1)):
            return None
        return match.group(2)


@runtime_checkable
class BlobListing(Protocol):
    """What blob retention needs of a blob store (synchronous, like ``BlobStore``)."""

    def list_blobs(self, page_size: int = 1000) -> Iterator[list[StoredBlob]]:
        """Every stored blob, a page at a time."""
        ...

    def blob_modified(self, key: str) -> datetime | None:
        """When ``key`` was last written; ``None`` if it is gone."""
        ...

    def delete_blobs(self, keys: Sequence[str]) -> None: ...


@dataclass(frozen=True, slots=True)
class BlobRetention:
    """Blob retention's inputs: the store, the grace, and Kafka's record lifetime."""

    store: BlobListing
    codec: SnapshotCodec
    grace: timedelta = timedelta(hours=24)
    kafka_lifetime: timedelta | None = None
    """``retention.ms + segment.ms`` of the event topics; ``None``: forever or unknown."""
    page_size: int = 1000


@dataclass(slots=True)
class BlobRun:
    """What blob retention found and (unless a dry run) deleted."""

    listed: int = 0
    young: int = 0
    """Blobs within the grace or Kafka's horizon (rules 2 and 3)."""
    referenced: int = 0
    foreign: int = 0
    """Objects whose key is not a content address (never touched)."""
    delete: list[StoredBlob] = field(default_factory=list)
    deleted: int = 0
    rewritten: int = 0
    """Candidates written again (or gone) since the listing, so not deleted (rule 5)."""
    note: str = ""

    @property
    def bytes_freed(self) -> int:
        return sum(b.size for b in self.delete)


def _digests_in(value: Any) -> set[str]:
    return set(_URI.findall(json.dumps(value, default=str)))


async def _kept_snapshot_refs(
    conn: Any, records: Iterable[SnapshotRecord], store: SnapshotStore, codec: SnapshotCodec
) -> None:
    """Every digest the state of a kept snapshot references, into the session table."""
    from orchestrator.projections import add_kept_blobs

    for record in records:
        snapshot = codec.decode(await store.get(record.object_key), record.object_key)
        await add_kept_blobs(conn, _digests_in(state_dict(snapshot.state)))


async def run_blob_retention(
    conn: Any,
    settings: BlobRetention,
    *,
    tables: ReadModelTables,
    kept_snapshots: Sequence[SnapshotRecord],
    snapshot_store: SnapshotStore,
    now: datetime,
    retiring: Sequence[str] = (),
    dry_run: bool = False,
) -> BlobRun:
    """Apply the safety rule (module docstring) to every stored blob.

    ``kept_snapshots``: the snapshots left after this run's prune. ``retiring``: ids of
    executions this run retires (a dry run does not delete their archive yet, so their
    events do not count as references)."""
    from orchestrator.projections import close_kept_blobs, open_kept_blobs, referenced_blobs

    run = BlobRun()
    if settings.kafka_lifetime is None:
        run.note = (
            "no blob deleted: Kafka keeps records forever or its retention is unknown,"
            " so any blob may still be named by a record it holds"
        )
        return run
    cutoff = now - settings.grace - settings.kafka_lifetime
    store = settings.store
    await open_kept_blobs(conn)
    snapshots_read = False
    try:
        pages = await asyncio.to_thread(lambda: iter(store.list_blobs(settings.page_size)))
        while (page := await asyncio.to_thread(next, pages, None)) is not None:
            run.listed += len(page)
            old: dict[str, list[StoredBlob]] = {}
            for blob in page:
                digest = blob.sha256
                if digest is None:
                    run.foreign += 1
                elif blob.modified >= cutoff:
                    run.young += 1
                else:
                    old.setdefault(digest, []).append(blob)
            if not old:
                continue
            found = await referenced_blobs(conn, tables, list(old), excluding=retiring)
            if len(found) < len(old) and not snapshots_read:
                try:
                    await _kept_snapshot_refs(conn, kept_snapshots, snapshot_store, settings.codec)
                except Exception as exc:  # unreadable snapshot, store outage: fail closed
                    logger.warning("blob retention skipped: %s", exc)
                    run.note = f"no blob deleted: a kept snapshot cannot be read ({exc})"
                    run.delete.clear()
                    return run
                snapshots_read = True
                found |= await referenced_blobs(conn, tables, list(old), excluding=retiring)
            candidates = []
            for digest, blobs in old.items():
                if digest in found:
                    run.referenced += len(blobs)
                else:
                    candidates.extend(blobs)
            run.delete.extend(candidates)
            if not dry_run and candidates:
                await _delete(run, store, cutoff, candidates)
    finally:
        await close_kept_blobs(conn)
    return run


async def _delete(
    run: BlobRun, store: BlobListing, cutoff: datetime, pending: list[StoredBlob]
) -> None:
    """Delete this page's candidates not re-written since the listing (rule 5)."""
    modified: Callable[[str], datetime | None] = store.blob_modified
    still = []
    for blob in pending:
        at = await asyncio.to_thread(modified, blob.key)
        if at is not None and at < cutoff:
            still.append(blob)
        else:
            run.rewritten += 1
    if still:
        await asyncio.to_thread(store.delete_blobs, [b.key for b in still])
        run.deleted += len(still)
        logger.info("blob retention deleted %s blob(s)", len(still))
