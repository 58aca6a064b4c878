"""Blob retention deletes only blobs nothing readable references (real S3 and PostgreSQL).

Executions with claim-checked task outputs and checkpoint data: some still running
(kept whole), the others finished long ago (retired by the same run). After the run
the retired executions' checkpoint data blobs (named only by their archived events,
now deleted) are gone; their task outputs stay (their kept terminal snapshot names
them); every execution restores to the fold of its history with every blob it names
readable; a blob younger than the grace period and every blob of a running execution
stay; with Kafka keeping records forever nothing is deleted at all.
"""

from __future__ import annotations

import asyncio
import dataclasses
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import _projector_support as support
import asyncpg
import pytest
from _snapshot_support import archive_restorer, project_and_snapshot, snapshotter_for
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from orchestrator.devstack import S3Endpoint
from orchestrator.events import record_lifetime_ms
from orchestrator.events.catalogue import CheckpointSaved, TaskCompleted
from orchestrator.events.envelope import Envelope
from orchestrator.events.errors import UserDataError
from orchestrator.events.fold import fold
from orchestrator.events.state import state_dict
from orchestrator.events.userdata import BlobRef, encode_user_data, fetch_verified
from orchestrator.snapshots import BlobRetention
from orchestrator.snapshots.codec import SnapshotCodec
from orchestrator.snapshots.policy import RetentionPolicy
from orchestrator.snapshots.postgres import PostgresSnapshotIndex
from orchestrator.snapshots.retention import run_retention
from orchestrator.snapshots.s3 import S3SnapshotStore
from orchestrator.snapshots.store import blob_prefix
from orchestrator.state.blobs import S3BlobStore

_FINISHED = ("completed", "failed", "cancelled")
_BIG: dict[str, Any] = {"claim_check_threshold": 512, "compress_threshold": 10**9}


def _claim_checked(hist: dict[str, list[Envelope]], blobs: S3BlobStore) -> dict[str, set[str]]:
    """Give every task output and checkpoint a blob of its own; ``{eid: {sha256}}`` of
    the checkpoint blobs (which no state names)."""
    checkpoint_blobs: dict[str, set[str]] = {}
    for eid, events in hist.items():
        out = []
        for e in events:
            p = e.payload
            big = {"eid": eid, "event": e.event_id, "pad": "x" * 2048}
            if isinstance(p, TaskCompleted):
                data = encode_user_data(big, **_BIG, blob_store=blobs)
                e = dataclasses.replace(e, payload=dataclasses.replace(p, outputs=data))
            elif isinstance(p, CheckpointSaved):
                data = encode_user_data(big, **_BIG, blob_store=blobs)
                assert data.ref is not None
                checkpoint_blobs.setdefault(eid, set()).add(data.ref.sha256)
                e = dataclasses.replace(e, payload=dataclasses.replace(p, data=data))
            out.append(e)
        hist[eid] = out
    return checkpoint_blobs


def _refs(value: Any) -> list[BlobRef]:
    """Every blob marker in a JSON-like value."""
    found: list[BlobRef] = []
    if isinstance(value, dict):
        marker = value.get("$blob")
        if isinstance(marker, dict):
            found.append(BlobRef(marker["uri"], marker["sha256"], marker["size"]))
        for v in value.values():
            found.extend(_refs(v))
    elif isinstance(value, list | tuple):
        for v in value:
            found.extend(_refs(v))
    return found


def _event_refs(events: list[Envelope]) -> list[BlobRef]:
    return [
        ud.ref
        for e in events
        for ud in (getattr(e.payload, "outputs", None), getattr(e.payload, "data", None))
        if ud is not None and getattr(ud, "ref", None) is not None
    ]


async def _set_topic_retention(bootstrap: str, topic: str, retention_ms: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        configs = {"retention.ms": str(retention_ms), "segment.ms": "100"}
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs)])
    finally:
        await admin.close()


@pytest.mark.usefixtures("kafka")
async def test_blob_retention_keeps_every_kept_execution_restorable(
    kafka: Any, make_projection: support.MakeProjection, s3: S3Endpoint
) -> None:
    bootstrap = kafka.bootstrap_servers
    root = f"test-{uuid.uuid4().hex[:12]}/"
    store = S3SnapshotStore(s3.bucket, root + "states/", client=s3.client())
    blobs = S3BlobStore(s3.client(), s3.bucket, blob_prefix(store.prefix))
    hist = support.histories(8, seed=97, tasks=6)
    running = set(list(hist)[:3])
    for eid in running:  # still running: everything they name must stay
        hist[eid] = hist[eid][:-1]
    checkpoint_blobs = _claim_checked(hist, blobs)
    finished = {e for e, h in hist.items() if (s := fold(h)) and s.status in _FINISHED}
    assert finished and not finished & running
    retired_checkpoints = set().union(*(checkpoint_blobs.get(e, set()) for e in finished))
    assert retired_checkpoints, "the histories should save checkpoints"

    events = support.mixed(hist, seed=98)
    topics, settings, dsn = await make_projection(2)
    codec = SnapshotCodec()
    snapshotter = snapshotter_for(topics, dsn, bootstrap, store, codec, frequency=4)
    await support.append_all(kafka, topics, events)
    await project_and_snapshot(settings, dsn, bootstrap, snapshotter, len(events))

    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        index = PostgresSnapshotIndex(pool)
        policy = RetentionPolicy(max_checkpoints=1, max_age_days=1, retention_days=1)
        # Kafka keeps these records forever: any blob may still be named by one.
        forever = await record_lifetime_ms(bootstrap, [topics.pipeline.name])
        assert forever is None
        never = await run_retention(
            pool,
            policy,
            index=index,
            store=store,
            tables=settings.tables,
            now=datetime.now(UTC) + timedelta(days=30),
            dry_run=True,
            blobs=BlobRetention(blobs, codec, kafka_lifetime=None),
        )
        assert never.blobs is not None and never.blobs.delete == [] and never.blobs.note

        # Short retention; a young blob written (seconds) after all the others.
        await _set_topic_retention(bootstrap, topics.pipeline.name, 100)
        lifetime = await record_lifetime_ms(bootstrap, [topics.pipeline.name])
        assert lifetime == 200
        await asyncio.sleep(3.5)  # S3 times have 1 s resolution: keep them apart
        young = encode_user_data({"young": "y" * 2048}, **_BIG, blob_store=blobs)
        assert young.ref is not None
        young_key = young.ref.uri.removeprefix(f"s3://{s3.bucket}/")
        written = await asyncio.to_thread(blobs.blob_modified, young_key)
        assert written is not None
        # The run happens two days later, with a grace just over that: the young blob
        # is inside the grace, everything written before it is past it.
        grace = timedelta(days=2, seconds=1)
        retention = BlobRetention(
            blobs, codec, grace=grace, kafka_lifetime=timedelta(milliseconds=lifetime)
        )
        now = written + timedelta(days=2)

        async def run(dry_run: bool) -> Any:
            return await run_retention(
                pool,
                policy,
                index=index,
                store=store,
                tables=settings.tables,
                now=now,
                dry_run=dry_run,
                blobs=retention,
            )

        # A dead letter naming one of them (it may be replayed) keeps that blob.
        gone = {r.sha256: r for eid in finished for r in _event_refs(hist[eid])}
        held = sorted(retired_checkpoints)[0]
        await pool.execute(
            'INSERT INTO dead_letters (projection, topic, partition, "offset", reason,'
            " error_class, raw, dlq_topic) VALUES ('p', 't', 0, 0, 'r', 'E', $1, 't.dlq')",
            b"\x00\x01avro..." + gone[held].uri.encode() + b"\x02",
        )
        retired_checkpoints.discard(held)

        plan = await run(dry_run=True)
        assert plan.blobs is not None and plan.blobs.deleted == 0
        planned = {b.sha256 for b in plan.blobs.delete}
        assert planned == retired_checkpoints
        done = await run(dry_run=False)
        assert done.blobs is not None and done.retired is not None
        assert set(done.retirement.retire) == finished
        assert done.blobs.deleted == len(retired_checkpoints) and done.blobs.young == 1

        # The retired executions' checkpoint data is gone, but the dead letter's ...
        await asyncio.to_thread(fetch_verified, gone[held], blobs)
        for digest in retired_checkpoints:
            with pytest.raises(UserDataError):
                await asyncio.to_thread(fetch_verified, gone[digest], blobs)
        # ... the young blob and every blob a running execution names stay ...
        await asyncio.to_thread(fetch_verified, young.ref, blobs)
        for eid in running:
            for ref in _event_refs(hist[eid]):
                await asyncio.to_thread(fetch_verified, ref, blobs)
        # ... and every execution restores to its fold, each blob it names readable.
        restorer = archive_restorer(pool, store, codec, index)
        for eid, history in hist.items():
            restored = await restorer.latest(eid)
            assert restored.state == fold(history), eid
            named = _refs(state_dict(restored.state))
            assert bool(named) == any(isinstance(e.payload, TaskCompleted) for e in history)
            for ref in named:
                await asyncio.to_thread(fetch_verified, ref, blobs)
        # The reference lookup can use the partial index of migration 0016 (no archive scan).
        async with pool.acquire() as conn:
            await conn.execute("SET enable_seqscan = off")
            expr = "jsonb_path_query_array(t.payload, 'strict $.**.\"$blob\".sha256')"
            plan_text = "\n".join(
                r[0]
                for r in await conn.fetch(
                    f"EXPLAIN SELECT 1 FROM {settings.tables.execution_events} AS t"
                    f" WHERE {expr} ?| $1::text[] AND t.payload::text LIKE '%\"$blob\"%'",
                    [young.ref.sha256],
                )
            )
            await conn.execute("RESET enable_seqscan")
        assert "execution_events_blob_refs" in plan_text, plan_text
    finally:
        await pool.close()
