"""Create the S3 buckets a process writes to when they are missing (dev, ``snapshots run``)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from orchestrator.app import AppPlan
from orchestrator.snapshots import SnapshotStore

log = logging.getLogger(__name__)

_EXISTS = ("BucketAlreadyOwnedByYou", "BucketAlreadyExists")


_MISSING = ("404", "NoSuchBucket", "NotFound")


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


def make_buckets(client: Any, plan: AppPlan) -> None:
    """The buckets the plan writes snapshots and claim-checked blobs to."""
    buckets = set()
    if plan.snapshots.store_url.startswith("s3://"):
        buckets.add(plan.snapshots.store_url.removeprefix("s3://").partition("/")[0])
    if plan.blobs is not None and plan.blobs.bucket is not None:
        buckets.add(plan.blobs.bucket)
    ensure_buckets(client, buckets)


def ensure_store_bucket(store: SnapshotStore, endpoint_url: str | None, region: str | None) -> None:
    """The bucket of an S3 snapshot store (other stores need nothing)."""
    from orchestrator.snapshots.s3 import S3SnapshotStore, make_client

    if isinstance(store, S3SnapshotStore):
        client = make_client(endpoint_url=endpoint_url, region=region)
        ensure_buckets(client, [store.bucket])
