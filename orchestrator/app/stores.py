"""The app's stores, built from its plan: the S3 client, the blob store, the snapshot
store, the master key ring of encrypted user data, etcd's lease store, and the S3
buckets they write to (created when missing).

One place builds them, so ``App`` and the commands that open the same stores agree
on region, endpoint and server-side encryption.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from orchestrator.app.plan import AppPlan
from orchestrator.commands import EtcdLeaseStore
from orchestrator.config import Settings
from orchestrator.devstack import ServiceEndpoints
from orchestrator.events import KEYS_ENV, BlobStore, EventCodec, History, KeyConfigError, KeyRing
from orchestrator.projections import PostgresEventArchive
from orchestrator.snapshots import (
    SnapshotStore,
    open_store,
    snapshot_history,
)
from orchestrator.state import FilesystemBlobStore, S3BlobStore

log = logging.getLogger(__name__)

_EXISTS = ("BucketAlreadyOwnedByYou", "BucketAlreadyExists")
_MISSING = ("404", "NoSuchBucket", "NotFound")


def key_ring(encrypt: bool) -> KeyRing | None:
    """The master key ring, if the environment sets one; with ``encrypt`` it must.

    A ring without ``encrypt`` still opens data encrypted earlier (and the reverse: data
    written unencrypted reads whatever the setting)."""
    ring = KeyRing.from_env()
    if encrypt and ring is None:
        raise KeyConfigError(
            KEYS_ENV,
            "checkpointing.storage.encrypt is true (user data and snapshots are encrypted) "
            f"but no key ring is set: set {KEYS_ENV}=<key id>:<base64 of 32 random bytes>",
        )
    return ring


def s3_client(plan: AppPlan, endpoints: ServiceEndpoints, endpoint_url: str | None) -> Any:
    """A boto3 client with the configured region (else the environment's) and keys."""
    from orchestrator.snapshots import make_client

    return make_client(
        endpoint_url=endpoint_url,
        region=plan.s3_region or endpoints.s3_region,
        access_key=endpoints.s3_access_key,
        secret_key=endpoints.s3_secret_key,
    )


def blob_store(plan: AppPlan, endpoints: ServiceEndpoints) -> BlobStore | None:
    """Where claim-checked user data goes (``None``: nowhere configured)."""
    blobs = plan.blobs
    if blobs is None:
        return None
    if blobs.root is not None:
        return FilesystemBlobStore(blobs.root)
    assert blobs.bucket is not None
    sp = plan.snapshots  # the S3 backend's encryption block: blobs as snapshots
    return S3BlobStore(
        s3_client(plan, endpoints, blobs.endpoint_url),
        blobs.bucket,
        blobs.prefix,
        server_side_encryption="aws:kms" if sp.sse_kms or sp.kms_key else None,
        kms_key_id=sp.kms_key,
    )


def snapshot_store(plan: AppPlan, endpoints: ServiceEndpoints) -> SnapshotStore:
    """The snapshot store of ``state_management.snapshots.storage`` (or the backend's)."""
    sp = plan.snapshots
    if sp.store_url.startswith("s3://"):
        from orchestrator.snapshots import S3SnapshotStore

        bucket, _, prefix = sp.store_url.removeprefix("s3://").partition("/")
        return S3SnapshotStore(
            bucket,
            prefix,
            client=s3_client(plan, endpoints, sp.endpoint_url),
            server_side_encryption="aws:kms" if sp.sse_kms or sp.kms_key else None,
            kms_key_id=sp.kms_key,
        )
    return open_store(sp.store_url, file_format=sp.file_format)


def history_of(plan: AppPlan, endpoints: ServiceEndpoints, pool: Any, codec: EventCodec) -> History:
    """The history service of this deployment: the archive, from the newest snapshot of
    the configured store (snapshots disabled: from the first event)."""
    from orchestrator.snapshots import PostgresSnapshotIndex

    archive = PostgresEventArchive(pool, codec, tables=plan.projection.tables)
    if not plan.snapshots.enabled:
        return History(archive)
    return snapshot_history(
        archive=archive,
        index=PostgresSnapshotIndex(pool),
        store=snapshot_store(plan, endpoints),
        codec=plan.snapshots.codec(),
    )


def etcd_store(plan: AppPlan) -> EtcdLeaseStore | None:
    """Leases on etcd when ``distributed.coordination`` says so (the caller closes it),
    else ``None``: PostgreSQL's."""
    if not plan.etcd_endpoints:
        return None
    return EtcdLeaseStore(plan.etcd_endpoints, timeout=plan.connect_timeout)


def with_s3_storage(settings: Settings, endpoints: ServiceEndpoints) -> Settings:
    """Snapshots and blobs in ``S3_BUCKET`` when ``S3_ENDPOINT_URL`` is set and the file
    does not choose a storage itself."""
    sm = settings.state_management
    if endpoints.s3_endpoint_url is None or sm.backend is not None:
        return settings
    if "storage" in sm.snapshots.model_fields_set:
        return settings
    data = settings.model_dump(by_alias=True, exclude_unset=True)
    snapshots = data.setdefault("state_management", {}).setdefault("snapshots", {})
    snapshots["storage"] = f"s3://{endpoints.s3.bucket}/states"
    return Settings.model_validate(data)


def plan_buckets(plan: AppPlan) -> set[str]:
    """The S3 buckets the plan writes snapshots and claim-checked blobs to."""
    buckets = set()
    if plan.snapshots.store_url.startswith("s3://"):
        buckets.add(plan.snapshots.store_url.removeprefix("s3://").partition("/")[0])
    if plan.blobs is not None and plan.blobs.bucket is not None:
        buckets.add(plan.blobs.bucket)
    return buckets


def ensure_buckets(client: Any, buckets: Iterable[str]) -> None:
    """Create each bucket that does not exist (an S3 server starts empty); a bucket that
    exists is left alone, so credentials without CreateBucket rights work."""
    from botocore.exceptions import ClientError

    for bucket in sorted(set(buckets)):
        try:
            client.head_bucket(Bucket=bucket)
            continue
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in _MISSING:
                raise
        try:
            client.create_bucket(Bucket=bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in _EXISTS:
                raise
        else:
            log.info("created bucket %s", bucket)
