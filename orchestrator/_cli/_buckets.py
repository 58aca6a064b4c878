"""Create the S3 buckets a process writes to when they are missing (dev, ``snapshots run``)."""

from __future__ import annotations

from typing import Any

from orchestrator.app import AppPlan, ensure_buckets, plan_buckets
from orchestrator.snapshots import SnapshotStore


def make_buckets(client: Any, plan: AppPlan) -> None:
    """The buckets the plan writes snapshots and claim-checked blobs to."""
    ensure_buckets(client, plan_buckets(plan))


def ensure_store_bucket(store: SnapshotStore, endpoint_url: str | None, region: str | None) -> None:
    """The bucket of an S3 snapshot store (other stores need nothing)."""
    from orchestrator.snapshots import S3SnapshotStore, make_client

    if isinstance(store, S3SnapshotStore):
        client = make_client(endpoint_url=endpoint_url, region=region)
        ensure_buckets(client, [store.bucket])
