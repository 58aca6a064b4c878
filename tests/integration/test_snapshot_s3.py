"""The snapshot store contract against the real S3 server (SeaweedFS by default)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from orchestrator.devstack import S3Endpoint
from orchestrator.snapshots.errors import SnapshotStoreError
from orchestrator.snapshots.s3 import S3SnapshotStore
from orchestrator.snapshots.store import Lifecycle, SnapshotStore, blob_prefix
from orchestrator.snapshots.testing import SnapshotStoreContract
from orchestrator.state.blobs import S3BlobStore


def _store(s3: S3Endpoint, **options: Any) -> S3SnapshotStore:
    return S3SnapshotStore(
        s3.bucket, f"test-{uuid.uuid4().hex[:12]}/", client=s3.client(), **options
    )


class TestS3SnapshotStore(SnapshotStoreContract):
    @pytest.fixture
    async def store(self, s3: S3Endpoint) -> AsyncIterator[SnapshotStore]:
        store = _store(s3)
        yield store
        await store.delete(await store.list())

    @pytest.fixture
    def lifecycle_supported(self) -> tuple[str, ...]:
        # SeaweedFS keeps an expiration rule but refuses Glacier transitions
        # (NotImplemented); the store applies what it can and reports the rest.
        return ("expiration=365d",)


async def test_prefixes_keep_stores_apart(s3: S3Endpoint) -> None:
    a, b = _store(s3), _store(s3)
    await a.put("p/e/000000000001.snap", b"a")
    assert await b.list() == []
    assert a.uri("p/e/000000000001.snap").startswith(f"s3://{s3.bucket}/test-")


async def test_server_side_encryption_is_passed_through_on_every_put(s3: S3Endpoint) -> None:
    store = _store(s3, kms_key_id="alias/orchestrator")
    assert store.put_arguments == {
        "ServerSideEncryption": "aws:kms",
        "SSEKMSKeyId": "alias/orchestrator",
    }
    seen: list[dict[str, str]] = []

    def capture(request: Any, **_: Any) -> None:
        seen.append(dict(request.headers))

    store._client.meta.events.register("before-send.s3.PutObject", capture)
    # SeaweedFS has no KMS: it answers the SSE-KMS put with an error, which the store
    # reports as a SnapshotStoreError; the request carried the headers either way.
    try:
        await store.put("p/e/000000000001.snap", b"x")
    except SnapshotStoreError as exc:
        assert exc.operation == "put" and exc.object_key == "p/e/000000000001.snap"
    assert seen, "no PutObject request was sent"
    headers = {k.lower(): v.decode() if isinstance(v, bytes) else v for k, v in seen[0].items()}
    assert headers["x-amz-server-side-encryption"] == "aws:kms"
    assert headers["x-amz-server-side-encryption-aws-kms-key-id"] == "alias/orchestrator"


async def test_lifecycle_replaces_only_its_own_rule(s3: S3Endpoint) -> None:
    store = _store(s3)
    first = await store.apply_lifecycle(Lifecycle(expiration=30))
    second = await store.apply_lifecycle(Lifecycle(expiration=90))
    assert first.applied == ("expiration=30d",) and second.applied == ("expiration=90d",)
    rules = await asyncio.to_thread(
        store._client.get_bucket_lifecycle_configuration, Bucket=store.bucket
    )
    ours = [r for r in rules["Rules"] if r["ID"] == "orchestrator-snapshots"]
    assert len(ours) == 1 and ours[0]["Expiration"]["Days"] == 90


async def test_the_lifecycle_rule_never_covers_the_blobs_live_events_reference(
    s3: S3Endpoint,
) -> None:
    """Blobs go beside the snapshot prefix (``blob_prefix``); the rule filters on the
    snapshot prefix only, so expiring snapshots never expires a referenced blob."""
    root = f"test-{uuid.uuid4().hex[:12]}/"
    store = S3SnapshotStore(s3.bucket, root + "states/", client=s3.client())
    blobs = S3BlobStore(s3.client(), s3.bucket, blob_prefix(store.prefix))
    uri = await asyncio.to_thread(blobs.put_blob, "blobs/ab/" + "ab" * 32, b"user data")
    await store.put("p/e/000000000001.snap", b"snapshot")
    report = await store.apply_lifecycle(Lifecycle(transition_to_glacier=30, expiration=365))
    assert "expiration=365d" in report.applied
    rules = await asyncio.to_thread(
        store._client.get_bucket_lifecycle_configuration, Bucket=store.bucket
    )
    (ours,) = [r for r in rules["Rules"] if r["ID"] == "orchestrator-snapshots"]
    covered = ours["Filter"]["Prefix"]
    assert covered == root + "states/"
    assert store.uri("p/e/000000000001.snap").removeprefix(f"s3://{s3.bucket}/").startswith(covered)
    assert not uri.removeprefix(f"s3://{s3.bucket}/").startswith(covered)

    # A snapshot store at the bucket's root would cover the blobs: no rule is installed.
    bare = S3SnapshotStore(s3.bucket, "", client=s3.client())
    refused = await bare.apply_lifecycle(Lifecycle(expiration=30))
    assert refused.applied == () and "blobs" in refused.detail
    again = await asyncio.to_thread(
        store._client.get_bucket_lifecycle_configuration, Bucket=store.bucket
    )
    assert [r for r in again["Rules"] if r["ID"] == "orchestrator-snapshots"] == [ours]
