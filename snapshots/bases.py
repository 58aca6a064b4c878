"""Where a fold of history starts: the newest usable snapshot within a bound.

:class:`SnapshotBaseReader` is the snapshot side of the history service
(``events.history``, port ``SnapshotBases``): it reads the index, newest first,
and decodes snapshots until one checks out. A snapshot that does not decode (unknown
schema, failed auth tag, bad checksum, truncation, missing object) is skipped with a
WARNING naming the object, for an older one or a fold from the first event: a damaged
snapshot costs time, never a wrong state. The snapshotter's bootstrap loads the newest
snapshot of many executions at once through :meth:`SnapshotBaseReader.newest_of`.
"""

from __future__ import annotations

import asyncio
import logging

from orchestrator.events import Base, Bound, EventArchive, History, LogReader
from orchestrator.snapshots._decoded import DEFAULT_BUDGET, DecodedCache
from orchestrator.snapshots.codec import Snapshot, SnapshotCodec
from orchestrator.snapshots.errors import SnapshotCorrupt, SnapshotNotFound
from orchestrator.snapshots.index import SnapshotIndex, SnapshotRecord
from orchestrator.snapshots.store import SnapshotStore
from orchestrator.snapshots.stores import open_store

logger = logging.getLogger(__name__)

_FIRST_CANDIDATES = 4


class SnapshotBaseReader:
    """Newest usable snapshots from ``index``; objects from ``store``, else from the
    store each index row names (opened once per name)."""

    def __init__(
        self,
        index: SnapshotIndex,
        codec: SnapshotCodec | None = None,
        store: SnapshotStore | None = None,
        *,
        s3_endpoint_url: str | None = None,
        cache_bytes: int = DEFAULT_BUDGET,
    ) -> None:
        """``cache_bytes``: snapshot objects whose decoded states are kept for the next
        restore (see ``snapshots._decoded``); 0 for a reader that meets each snapshot
        once (the snapshotter's bootstrap), so its memory does not grow with them."""
        self.index = index
        self.codec = codec or SnapshotCodec()
        self.store = store
        self.s3_endpoint_url = s3_endpoint_url
        self._stores: dict[str, SnapshotStore] = {}
        self._decoded: DecodedCache[Snapshot] = DecodedCache(cache_bytes)

    def store_of(self, record: SnapshotRecord) -> SnapshotStore:
        """The store holding ``record``'s object."""
        if self.store is not None:
            return self.store
        store = self._stores.get(record.store)
        if store is None:
            endpoint = self.s3_endpoint_url if record.store.startswith("s3://") else None
            store = self._stores[record.store] = open_store(record.store, endpoint_url=endpoint)
        return store

    async def newest(self, execution_id: str, bound: Bound, skipped: list[str]) -> Base | None:
        """The newest snapshot within the bound that decodes; a few rows are read first,
        the rest only if all of those are unusable."""
        top = bound.max_sequence
        if top is not None and bound.through:
            top -= 1
        tried: set[str] = set()
        for limit in (_FIRST_CANDIDATES, None):
            records = await self.index.candidates(execution_id, max_sequence=top, limit=limit)
            for record in records:
                if record.object_key in tried or not bound.admits(
                    record.sequence, record.log_order
                ):
                    continue
                tried.add(record.object_key)
                snapshot = await self.load(record, execution_id, skipped)
                if snapshot is None:
                    continue
                header = snapshot.header
                if not bound.admits(
                    header.sequence, (header.position.partition, header.position.offset)
                ):
                    # The object was rewritten after its index row (a crash between the
                    # writes): it is newer than the target, so an older snapshot serves.
                    logger.info(
                        "snapshot %s is past the target %s; skipped",
                        record.object_key,
                        bound.describe(),
                    )
                    continue
                uri = self.store_of(record).uri(record.object_key)
                return Base(snapshot.state, header.position, uri)
            if limit is not None and len(records) < limit:
                break
        return None

    async def newest_of(self, execution_ids: list[str]) -> tuple[set[str], dict[str, Snapshot]]:
        """Which of these executions have an index row, and the newest snapshot of each
        whose newest object decodes."""
        latest = await self.index.latest(execution_ids)
        loaded = await asyncio.gather(
            *(self.load(record, eid, []) for eid, record in latest.items())
        )
        found = {eid: snap for eid, snap in zip(latest, loaded, strict=True) if snap is not None}
        return set(latest), found

    async def load(
        self, record: SnapshotRecord, execution_id: str, skipped: list[str]
    ) -> Snapshot | None:
        """``record``'s snapshot, or ``None`` (logged, its URI added to ``skipped``) when it
        does not decode or holds another execution."""
        store = self.store_of(record)
        uri = store.uri(record.object_key)
        try:
            snapshot = await self._decode(store, record.object_key, uri)
        except (SnapshotCorrupt, SnapshotNotFound) as exc:
            self._decoded.forget(uri)
            logger.warning(
                "snapshot %s of execution %s at sequence %s is unusable (%s); "
                "using an older snapshot or a replay",
                uri,
                execution_id,
                record.sequence,
                exc,
            )
            skipped.append(uri)
            return None
        if snapshot.header.execution_id != execution_id:
            logger.warning(
                "snapshot %s holds execution %s, not %s; skipped",
                uri,
                snapshot.header.execution_id,
                execution_id,
            )
            skipped.append(uri)
            return None
        return snapshot

    async def _decode(self, store: SnapshotStore, key: str, uri: str) -> Snapshot:
        """The object decoded, or the cached decode of it while it is unchanged: by
        its version where the store tells one (stated before the read, so a rewrite
        in between costs a decode, never a stale answer), else by its bytes."""
        versioned = getattr(store, "version", None)
        version = None if versioned is None else await versioned(key)
        if version is not None:
            snapshot = self._decoded.get(uri, version)
            if snapshot is not None:
                return snapshot
        data = await store.get(key)
        token: object = data if version is None else version
        snapshot = self._decoded.get(uri, token) if version is None else None
        if snapshot is None:
            snapshot = self.codec.decode(data, uri)
            self._decoded.put(uri, token, snapshot, len(data))
        return snapshot


def snapshot_history(
    *,
    archive: EventArchive,
    index: SnapshotIndex,
    store: SnapshotStore | None = None,
    codec: SnapshotCodec | None = None,
    log: LogReader | None = None,
    s3_endpoint_url: str | None = None,
) -> History:
    """The history service over ``archive`` (and ``log``), starting from the snapshots
    ``index`` lists (objects in ``store``, else in the store each row names)."""
    bases = SnapshotBaseReader(index, codec, store, s3_endpoint_url=s3_endpoint_url)
    return History(archive, snapshots=bases, log=log)
