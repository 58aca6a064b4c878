"""``restore-backup``: an empty deployment rebuilt from a backup (see ``_format``).

Refused, naming what holds data, unless the target is empty: its read-model tables,
archive and snapshot index (PostgreSQL), its event topics (Kafka) and its snapshot
store. There is no ``--force``: appending a backup to a live history would mix two
histories, and an interrupted restore is started over on a dropped target.

Steps, each an existing path: migrations and ``topics ensure``; the wrapped data keys
of user-data encryption put back in ``data_keys`` as they were (an erased execution's
tombstone too, so it stays erased), before anything reads user data; the events re-appended
to the configured topics with their bytes unchanged (event ids, epochs, sequences,
writer schema), partition by partition in offset order, so each execution's order is
kept and a duplicate is still recognised by its event id; the blobs put back at the
URIs the events reference; each snapshot decoded, given the position its last event
has in the new log, and written again through ``SnapshotWriter`` and the index; then
``projections.rebuild`` folds the read models (and the archive) from the new log. The
result is checked against the manifest: every execution at its backed-up sequence.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg

from orchestrator.app import apply_migrations, ensure_buckets, ensure_configured_topics, open_pool
from orchestrator.backup._format import MANIFEST, BackupFormatError, Manifest, read_file
from orchestrator.backup._setup import Deployment
from orchestrator.events import (
    EventLog,
    OrchestratorStateError,
    Position,
    ProducerSettings,
    UserDataError,
    codec_for,
    describe_topics,
    error_fields,
)
from orchestrator.projections import (
    close_pool,
    last_sequences,
    rebuild,
    restore_data_keys,
    tables_holding_rows,
)
from orchestrator.snapshots import (
    PendingSnapshot,
    PostgresSnapshotIndex,
    SnapshotCorrupt,
    SnapshotNotFound,
    SnapshotStore,
    SnapshotStoreError,
    SnapshotWriter,
)
from orchestrator.state import S3BlobStore

logger = logging.getLogger(__name__)

Progress = Callable[[str], None]
_BATCH = 1000
_NOTES = 20
_SNAPSHOT_BATCH = 64
OldPosition = tuple[str, int, int]


@error_fields(
    "restore-backup needs an empty deployment, but {_held}: point it at a new database, "
    "topics and snapshot store, or drop these first"
)
class TargetNotEmpty(OrchestratorStateError):
    """The restore target already holds data (``what`` names it)."""

    what: list[str]

    @property
    def _held(self) -> str:
        return "; ".join(self.what)


@dataclass(slots=True)
class RestoreReport:
    """What a restore did; ``consistent`` when every execution is at its backed-up sequence."""

    events: int = 0
    shared_events: int = 0
    blobs: int = 0
    snapshots: int = 0
    data_keys: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    executions: int = 0
    behind: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def consistent(self) -> bool:
        return not self.behind

    def skip(self, what: str, note: str) -> None:
        self.skipped[what] = self.skipped.get(what, 0) + 1
        if len(self.notes) < _NOTES:
            self.notes.append(note)
        logger.warning("restore-backup: %s", note)


async def read_manifest(src: SnapshotStore) -> Manifest:
    """The backup's manifest; a folder without one is not a (finished) backup."""
    try:
        return Manifest.from_json(await src.get(MANIFEST))
    except SnapshotNotFound:
        raise BackupFormatError(
            f"no {MANIFEST} at {src.name}: not a backup, or one that did not finish"
        ) from None


class _Restore:
    def __init__(self, dep: Deployment, src: SnapshotStore, progress: Progress) -> None:
        self.dep, self.src, self.progress = dep, src, progress
        self.report = RestoreReport()
        self.store = dep.snapshot_store()
        self._buckets: set[str] = set()

    async def run(self, manifest: Manifest) -> RestoreReport:
        plan = self.dep.plan
        pool = await open_pool(plan.dsn, max_size=2, deadline_s=plan.connect_timeout)
        try:
            log = EventLog(
                plan.bootstrap,
                codec_for(plan.projection.limits),
                ProducerSettings(
                    client_id="orchestrator-restore",
                    delivery_timeout_ms=plan.delivery_timeout_ms,
                    security=plan.kafka_security,
                ),
                topics=plan.topics,
                supports_idempotence=plan.supports_idempotence,
            )
            async with log:
                await self._refuse_unless_empty(pool, log)
                await ensure_configured_topics(
                    plan.bootstrap, plan.topics, security=plan.kafka_security
                )
                await apply_migrations(pool, plan.table_names)
                await self._data_keys(manifest, pool)
                wanted = await self._snapshot_positions(manifest)
                moved = await self._events(manifest, log, wanted)
            await self._blobs(manifest)
            await self._snapshots(manifest, pool, moved)
            self.progress("rebuilding the read models from the restored log")
            await rebuild(plan.projection, plan.dsn, plan.bootstrap, security=plan.kafka_security)
            await self._verify(manifest, pool)
        finally:
            await close_pool(pool)
        return self.report

    async def _refuse_unless_empty(self, pool: asyncpg.Pool, log: EventLog) -> None:
        plan = self.dep.plan
        tables = [t for _, t in plan.projection.tables.items()] + ["snapshots", "data_keys"]
        held = [f"table {table} holds rows" for table in await tables_holding_rows(pool, tables)]
        report = await describe_topics(
            plan.bootstrap,
            [plan.topics.pipeline, plan.topics.shared],
            security=plan.kafka_security,
        )
        for topic in report.topics:
            if topic.exists and any((await log.end_offsets(topic.name)).values()):
                held.append(f"topic {topic.name} holds records")
        try:
            keys = await self.store.list()
        except SnapshotStoreError:
            keys = []  # no bucket yet: empty (made below)
        if keys:
            held.append(f"snapshot store {self.store.name} holds objects ({keys[0]}, ...)")
        if held:
            raise TargetNotEmpty(held)
        self._ensure_bucket_of(self.store.name)

    def _ensure_bucket_of(self, uri: str) -> None:
        if uri.startswith("s3://"):
            bucket = uri.removeprefix("s3://").partition("/")[0]
            if bucket not in self._buckets:
                client = self.dep.s3_client(self.dep.plan.snapshots.endpoint_url)
                ensure_buckets(client, [bucket])
                self._buckets.add(bucket)

    async def _data_keys(self, manifest: Manifest, pool: asyncpg.Pool) -> None:
        """The rows of ``data_keys`` as backed up (still wrapped by the master key ring)."""
        for entry in manifest.of_kind("data_keys"):
            rows = [
                (r["scope"], r["master_key_id"], r["wrapped_key"], r["created_at"], r["erased_at"])
                for r in await read_file(self.src, entry)
            ]
            await restore_data_keys(pool, rows)
            self.report.data_keys += sum(1 for row in rows if row[2] is not None)
        self.progress(f"data keys: {self.report.data_keys} restored")

    async def _snapshot_positions(self, manifest: Manifest) -> set[OldPosition]:
        wanted: set[OldPosition] = set()
        for entry in manifest.of_kind("snapshots"):
            for r in await read_file(self.src, entry):
                wanted.add((r["topic"], r["partition"], r["offset"]))
        return wanted

    async def _events(
        self, manifest: Manifest, log: EventLog, wanted: set[OldPosition]
    ) -> dict[OldPosition, Position]:
        plan, source = self.dep.plan, manifest.source
        topics = {
            source["pipeline_topic"]: plan.topics.pipeline.name,
            source["shared_topic"]: plan.topics.shared.name,
        }
        moved: dict[OldPosition, Position] = {}
        for entry in manifest.of_kind("events"):
            batch: list[dict[str, Any]] = []
            for record in await read_file(self.src, entry):
                batch.append(record)
                if len(batch) >= _BATCH:
                    await self._append(log, batch, topics, wanted, moved)
                    batch = []
            await self._append(log, batch, topics, wanted, moved)
            self.progress(f"events: {self.report.events + self.report.shared_events} appended")
        return moved

    async def _append(
        self,
        log: EventLog,
        batch: list[dict[str, Any]],
        topics: dict[str, str],
        wanted: set[OldPosition],
        moved: dict[OldPosition, Position],
    ) -> None:
        if not batch:
            return
        records = [(topics[r["topic"]], r["key"], r["value"]) for r in batch]
        positions = await log.append_raw_batch(records)
        for record, position in zip(batch, positions, strict=True):
            old = (record["topic"], record["partition"], record["offset"])
            if old in wanted:
                moved[old] = position
            if record["execution_id"] is None:
                self.report.shared_events += 1
            else:
                self.report.events += 1

    async def _blobs(self, manifest: Manifest) -> None:
        for entry in manifest.of_kind("blobs"):
            for r in await read_file(self.src, entry):
                uri, data = r["uri"], r["data"]
                if hashlib.sha256(data).hexdigest() != r["sha256"] or len(data) != r["size"]:
                    self.report.skip("blobs", f"blob {uri}: damaged in the backup, not restored")
                    continue
                found = self.dep.blob_store_for(uri)
                if found is None:
                    self.report.skip("blobs", f"blob {uri}: outside the target's blob store")
                    continue
                store, key = found
                if isinstance(store, S3BlobStore):
                    self._ensure_bucket_of(f"s3://{store.bucket}")
                try:
                    await asyncio.to_thread(store.put_blob, key, data)
                except UserDataError as exc:
                    self.report.skip("blobs", f"blob {uri}: {exc}")
                    continue
                self.report.blobs += 1
        self.progress(f"blobs: {self.report.blobs} restored")

    async def _snapshots(
        self, manifest: Manifest, pool: asyncpg.Pool, moved: dict[OldPosition, Position]
    ) -> None:
        dep = self.dep
        codec = dep.snapshot_codec()
        writer = SnapshotWriter(self.store, codec, dep.plan.snapshots.layout)
        index = PostgresSnapshotIndex(pool)
        for entry in manifest.of_kind("snapshots"):
            pending: list[PendingSnapshot] = []
            for r in await read_file(self.src, entry):
                name = f"snapshot of {r['execution_id']} at sequence {r['sequence']}"
                position = moved.get((r["topic"], r["partition"], r["offset"]))
                if position is None:
                    self.report.skip("snapshots", f"{name}: its last event is not in the backup")
                    continue
                try:
                    snapshot = codec.decode(r["data"], r["object_key"])
                except SnapshotCorrupt as exc:
                    self.report.skip("snapshots", f"{name}: {exc}")
                    continue
                pending.append(
                    PendingSnapshot(snapshot.state, position, snapshot.header.occurred_at)
                )
                if len(pending) >= _SNAPSHOT_BATCH:
                    await index.add(await writer.write_many(pending))
                    self.report.snapshots += len(pending)
                    pending = []
            if pending:
                await index.add(await writer.write_many(pending))
                self.report.snapshots += len(pending)
        self.progress(f"snapshots: {self.report.snapshots} restored")

    async def _verify(self, manifest: Manifest, pool: asyncpg.Pool) -> None:
        restored = await last_sequences(pool, self.dep.plan.projection)
        self.report.executions = len(restored)
        for execution_id, sequence in sorted(manifest.executions.items()):
            if sequence and restored.get(execution_id, 0) < sequence:
                self.report.behind.append(
                    f"{execution_id}: at {restored.get(execution_id)}, backed up at {sequence}"
                )


async def restore_backup(
    dep: Deployment, src: SnapshotStore, *, progress: Progress | None = None
) -> RestoreReport:
    """Rebuild the empty deployment ``dep`` from the backup in ``src``."""
    manifest = await read_manifest(src)
    return await _Restore(dep, src, progress or (lambda _: None)).run(manifest)
