"""The hourly retention run of an app, and the blob-retention inputs of a retention run
(the hourly loop and ``snapshots prune``).

Why here: they join three sides, the blob store (``orchestrator.state.blobs``), Kafka
(how long it may still hold a record naming a blob) and the snapshot codec (kept
snapshots are read for the blobs they name). The safety rule itself is in
``snapshots.blobretention``.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from orchestrator.app.plan import AppPlan
from orchestrator.events import (
    BlobStore,
    KafkaSecurity,
    TopicsConfig,
    record_lifetime_ms,
    user_data_topics,
)
from orchestrator.snapshots import (
    BlobListing,
    BlobRetention,
    RetentionPolicy,
    SnapshotCodec,
    SnapshotStore,
)


async def blob_retention(
    blob_store: BlobStore | None,
    codec: SnapshotCodec,
    policy: RetentionPolicy,
    *,
    bootstrap: str | None,
    topics: TopicsConfig,
    security: KafkaSecurity | None = None,
) -> BlobRetention | None:
    """``None`` when there is no listable blob store. Without ``bootstrap`` Kafka's
    record lifetime is unknown, so the run deletes no blob (and says so)."""
    if not isinstance(blob_store, BlobListing):
        return None
    lifetime: timedelta | None = None
    if bootstrap:
        kwargs = {} if security is None else {"security": security}
        ms = await record_lifetime_ms(bootstrap, user_data_topics(topics), **kwargs)
        lifetime = None if ms is None else timedelta(milliseconds=ms)
    return BlobRetention(
        blob_store,
        codec,
        grace=timedelta(hours=policy.blob_grace_hours),
        kafka_lifetime=lifetime,
    )


def blob_store_beside(
    store_url: str, *, endpoint_url: str | None = None, region: str | None = None
) -> BlobStore | None:
    """The blob store the app writes beside a snapshot store URL (as ``plan_app`` puts
    it): ``<folder>/blobs`` for ``file://``, the parent of the prefix for ``s3://``."""
    from orchestrator.snapshots import blob_prefix, make_client
    from orchestrator.state import FilesystemBlobStore, S3BlobStore

    if store_url.startswith("file://") or "://" not in store_url:
        return FilesystemBlobStore(Path(store_url.removeprefix("file://")) / "blobs")
    if store_url.startswith("s3://"):
        bucket, _, prefix = store_url.removeprefix("s3://").partition("/")
        client = make_client(endpoint_url=endpoint_url, region=region)
        return S3BlobStore(client, bucket, blob_prefix(prefix))
    return None


async def retention_forever(
    pool: asyncpg.Pool,
    plan: AppPlan,
    store: SnapshotStore,
    *,
    blobs: BlobStore | None,
    codec: SnapshotCodec | None,
    every: float,
) -> None:
    """Every ``every`` seconds: snapshots (``checkpointing.storage.retention``), then
    executions finished over ``retention_days`` ago that a kept snapshot covers, then the
    blobs nothing kept references (``snapshots.retention.run_retention``)."""
    from orchestrator.snapshots import PostgresSnapshotIndex, earliest_offsets, run_retention

    index = PostgresSnapshotIndex(pool)
    policy = plan.snapshots.retention
    while True:
        await asyncio.sleep(every)
        records = await index.all()
        tps = {(r.position.topic, r.position.partition) for r in records}
        earliest = await earliest_offsets(plan.bootstrap, tps, security=plan.kafka_security)
        retention = None
        if codec is not None:
            retention = await blob_retention(
                blobs,
                codec,
                policy,
                bootstrap=plan.bootstrap,
                topics=plan.topics,
                security=plan.kafka_security,
            )
        await run_retention(
            pool,
            policy,
            index=index,
            store=store,
            tables=plan.projection.tables,
            now=datetime.now(UTC),
            earliest=earliest,
            blobs=retention,
        )
