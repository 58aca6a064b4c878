"""``backup``: the history of a deployment, written as Avro files (see ``_format``).

What is read: the event archive in PostgreSQL (``execution_events``, ``shared_events``:
the raw records exactly as the log delivered them), falling back to the Kafka log for
the records the projection has not archived yet; the snapshot objects the index lists;
the claim-checked blobs the events reference; the wrapped data keys (``data_keys``).

Consistency (a backup taken while writers run): one REPEATABLE READ transaction reads
the projection's committed offsets, the archive and the snapshot index from one
PostgreSQL snapshot. The processor writes archive rows and offsets in one transaction,
so that snapshot holds exactly the records below the committed offset of each
partition. The end offset of each partition is read from Kafka just after; the backup
is the archive below the committed offset plus the log from there to that end. Per
partition that is a prefix of the log (poison records, which no fold has, aside), and
every execution's events sit on one partition in order, so each execution's history in
the backup is a prefix of its history. Snapshots past the cut are left out. Memory:
rows come through a server-side cursor and records are written in chunks.

Data keys are read after that transaction, once the end offsets are known: a key is
stored before any event sealed with it reaches the log, so every execution in the cut
has its key (or the tombstone of its erasure) in the backup. Keys stay wrapped by the
master key ring; an erased execution's row holds no key, so it stays erased.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields, is_dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import asyncpg

from orchestrator.app import dsn_address, open_pool
from orchestrator.backup._format import (
    BLOB_SCHEMA,
    DATA_KEY_SCHEMA,
    EVENT_SCHEMA,
    MANIFEST,
    SNAPSHOT_SCHEMA,
    BackupFormatError,
    ChunkWriter,
    FileEntry,
    Manifest,
)
from orchestrator.backup._setup import Deployment
from orchestrator.events import (
    BlobRef,
    DecodeError,
    Envelope,
    EventLog,
    ProducerSettings,
    UserData,
    UserDataError,
    codec_for,
    default_registry,
    fetch_verified,
    schemas_root,
)
from orchestrator.projections import ReadModelExport, close_pool
from orchestrator.snapshots import (
    PostgresSnapshotIndex,
    SnapshotNotFound,
    SnapshotStore,
    SnapshotStoreError,
)

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]
_NOTES = 20
_FETCH_BATCH = 16


@dataclass(slots=True)
class _Tally:
    counts: dict[str, int] = field(default_factory=dict)
    executions: dict[str, int] = field(default_factory=dict)
    cut: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    blobs_seen: set[str] = field(default_factory=set)

    def add(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def note(self, text: str) -> None:
        if len(self.notes) < _NOTES:
            self.notes.append(text)
        logger.warning("backup: %s", text)


def blob_refs(envelope: Envelope) -> Iterator[BlobRef]:
    """Every claim-check reference in the event's payload."""
    stack: list[Any] = [envelope.payload]
    while stack:
        item = stack.pop()
        if isinstance(item, UserData):
            if item.ref is not None:
                yield item.ref
        elif is_dataclass(item) and not isinstance(item, type):
            stack.extend(getattr(item, f.name) for f in fields(item))
        elif isinstance(item, tuple):
            stack.extend(item)


class _Backup:
    def __init__(self, dep: Deployment, dest: SnapshotStore, progress: Progress) -> None:
        self.dep, self.dest, self.progress = dep, dest, progress
        self.codec = codec_for(dep.plan.projection.limits)
        self.tally = _Tally()
        self.blobs = ChunkWriter(dest, "blobs/part", "blobs", BLOB_SCHEMA)
        self.snapshots = ChunkWriter(dest, "snapshots/part", "snapshots", SNAPSHOT_SCHEMA)

    async def run(self) -> Manifest:
        try:
            await self.dest.get(MANIFEST)
        except SnapshotNotFound:
            pass
        else:
            raise BackupFormatError(
                f"{self.dest.uri(MANIFEST)} exists: a backup is already there; "
                "choose another destination (backups are never overwritten)"
            )
        plan = self.dep.plan
        pool = await open_pool(plan.dsn, max_size=2, deadline_s=plan.connect_timeout)
        log = EventLog(
            plan.bootstrap,
            self.codec,
            ProducerSettings(
                client_id="orchestrator-backup",
                enable_idempotence=False,
                security=plan.kafka_security,
            ),
            topics=plan.topics,
            supports_idempotence=False,
        )
        try:
            async with log, pool.acquire() as conn:
                async with conn.transaction(isolation="repeatable_read", readonly=True):
                    files = await self._read(conn, log)
                files += await self._data_keys(conn)
        finally:
            await close_pool(pool)
        files += await self._copy_schemas()
        return await self._finish(files)

    async def _read(self, conn: asyncpg.Connection, log: EventLog) -> list[FileEntry]:
        plan = self.dep.plan
        # The first statement fixes the transaction's snapshot: offsets, archive, index.
        export = ReadModelExport(conn, plan.projection)
        committed = await export.offsets()
        streams: list[tuple[Literal["pipeline", "shared"], str]] = [
            ("pipeline", plan.topics.pipeline.name),
            ("shared", plan.topics.shared.name),
        ]
        ends = {topic: await log.end_offsets(topic) for _, topic in streams}
        files: list[FileEntry] = []
        for stream, topic in streams:
            writer = ChunkWriter(self.dest, f"events/{stream}", "events", EVENT_SCHEMA)
            for partition, end in sorted(ends[topic].items()):
                start = min(committed.get((topic, partition), 0), end)
                self.tally.cut[f"{topic}:{partition}"] = end
                async for row in export.archived(stream, topic, partition, start):
                    await self._event(
                        writer, stream, topic, partition, row["offset"], bytes(row["raw"]),
                        row["outcome"],
                    )  # fmt: skip
                if end > start:
                    async for position, raw in log.read_range_raw(topic, partition, start, end):
                        await self._event(
                            writer, stream, topic, partition, position.offset, raw, None
                        )
                self.progress(f"{topic}[{partition}]: up to offset {end}")
            await writer.flush()
            files += writer.entries
        await self._snapshots(conn, plan.topics.pipeline.name, ends[plan.topics.pipeline.name])
        await self.blobs.flush()
        await self.snapshots.flush()
        return files + self.snapshots.entries + self.blobs.entries

    async def _event(
        self,
        writer: ChunkWriter,
        stream: str,
        topic: str,
        partition: int,
        offset: int,
        raw: bytes,
        outcome: str | None,
    ) -> None:
        source = "log" if outcome is None else "archive"
        try:
            envelope = self.codec.decode(raw)
        except DecodeError as exc:
            # Poison: dead-lettered, in no execution's fold; it is not history.
            self.tally.add("undecodable_skipped")
            self.tally.note(f"{topic}[{partition}]@{offset} ({source}) not backed up: {exc}")
            return
        eid, seq = envelope.execution_id, envelope.sequence
        await writer.add(
            {
                "topic": topic,
                "partition": partition,
                "offset": offset,
                "key": envelope.key(),
                "execution_id": eid,
                "sequence": seq,
                "event_id": envelope.event_id,
                "event_type": envelope.event_type,
                "outcome": outcome,
                "source": source,
                "value": raw,
            },
            len(raw) + 100,
        )
        self.tally.add(f"{stream}_events")
        self.tally.add(f"from_{source}")
        if stream == "pipeline" and eid is not None:
            last = self.tally.executions.setdefault(eid, 0)
            if seq == last + 1 and outcome in (None, "applied"):
                self.tally.executions[eid] = seq
        for ref in blob_refs(envelope):
            await self._blob(ref)

    async def _blob(self, ref: BlobRef) -> None:
        if ref.uri in self.tally.blobs_seen:
            return
        self.tally.blobs_seen.add(ref.uri)
        found = self.dep.blob_store_for(ref.uri)
        if found is None:
            self.tally.add("blobs_missing")
            self.tally.note(f"blob {ref.uri}: outside the configured blob store, not backed up")
            return
        try:
            data = await asyncio.to_thread(fetch_verified, ref, found[0])
        except UserDataError as exc:
            self.tally.add("blobs_missing")
            self.tally.note(f"blob {ref.uri}: {exc}")
            return
        record = {"uri": ref.uri, "sha256": ref.sha256, "size": ref.size, "data": data}
        await self.blobs.add(record, len(data))
        self.tally.add("blobs")

    async def _snapshots(self, conn: asyncpg.Connection, topic: str, ends: dict[int, int]) -> None:
        store = self.dep.snapshot_store()
        batch: list[Any] = []
        async for row in PostgresSnapshotIndex(conn).rows_of_topic(topic):
            if row["offset"] >= ends.get(row["partition"], 0):
                self.tally.add("snapshots_after_cut")
                continue
            batch.append(row)
            if len(batch) >= _FETCH_BATCH:
                await self._snapshot_batch(store, topic, batch)
                batch = []
        await self._snapshot_batch(store, topic, batch)
        self.progress(f"snapshots: {self.tally.counts.get('snapshots', 0)}")

    async def _snapshot_batch(self, store: SnapshotStore, topic: str, rows: list[Any]) -> None:
        """Fetch a batch of objects concurrently (object stores answer one GET at a time
        slowly), then write them in index order."""

        async def get(row: Any) -> bytes | None:
            try:
                return await store.get(row["object_key"])
            except (SnapshotNotFound, SnapshotStoreError) as exc:
                self.tally.add("snapshots_missing")
                self.tally.note(f"snapshot {store.uri(row['object_key'])}: {exc}")
                return None

        fetched = await asyncio.gather(*(get(row) for row in rows))
        names = ("execution_id", "pipeline_id", "sequence", "epoch", "status", "object_key")
        for row, data in zip(rows, fetched, strict=True):
            if data is None:
                continue
            record = {name: row[name] for name in names}
            record.update(topic=topic, partition=row["partition"], offset=row["offset"], data=data)
            await self.snapshots.add(record, len(data))
            self.tally.add("snapshots")

    async def _data_keys(self, conn: asyncpg.Connection) -> list[FileEntry]:
        """``data_keys`` as stored: wrapped keys and erasure tombstones, never unwrapped."""
        keys = ChunkWriter(self.dest, "keys/part", "data_keys", DATA_KEY_SCHEMA)
        async for row in ReadModelExport(conn, self.dep.plan.projection).data_keys():
            wrapped = row["wrapped_key"]
            record = dict(row) | {"wrapped_key": None if wrapped is None else bytes(wrapped)}
            await keys.add(record, 200)
            self.tally.add("data_keys" if wrapped is not None else "data_keys_erased")
        await keys.flush()
        self.progress(f"data keys: {self.tally.counts.get('data_keys', 0)} (wrapped)")
        return keys.entries

    async def _copy_schemas(self) -> list[FileEntry]:
        """``schemas/`` as the code has it (events: current and releases; ``snapshot/``:
        the snapshot objects' own), so the backup reads without the code."""
        root = schemas_root()
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            rel = path.relative_to(root).as_posix()
            if path.suffix in (".avsc", ".md") or path.name == "FINGERPRINT":
                await self.dest.put(f"schemas/{rel}", await asyncio.to_thread(path.read_bytes))
        return []

    async def _finish(self, files: list[FileEntry]) -> Manifest:
        plan, registry = self.dep.plan, default_registry()
        released = [
            r.name for r in registry.releases if r.fingerprint == registry.current.fingerprint
        ]
        self.tally.counts["executions"] = len(self.tally.executions)
        manifest = Manifest(
            created_at=datetime.now(UTC).isoformat(),
            source={
                "pipeline_topic": plan.topics.pipeline.name,
                "shared_topic": plan.topics.shared.name,
                "projection": plan.projection.name,
                "database": dsn_address(plan.dsn),
                "snapshot_store": plan.snapshots.store_url,
            },
            schema={
                "current_fingerprint": registry.current.fingerprint_hex,
                "release": released[0] if released else "unreleased",
                "releases": {r.name: r.fingerprint_hex for r in registry.releases},
                "directory": "schemas/",
            },
            cut=self.tally.cut,
            counts=self.tally.counts,
            executions=self.tally.executions,
            files=files,
            notes=self.tally.notes,
        )
        await self.dest.put(MANIFEST, manifest.to_json())  # last: it marks a finished backup
        return manifest


async def take_backup(
    dep: Deployment, dest: SnapshotStore, *, progress: Progress | None = None
) -> Manifest:
    """Back up ``dep``'s history into ``dest`` (see the module docstring); the manifest."""
    return await _Backup(dep, dest, progress or (lambda _: None)).run()
