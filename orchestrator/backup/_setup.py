"""The deployment a backup reads or a restore writes: the same plan every process uses.

``plan_app`` maps the configuration and the servers to topics, tables, the snapshot
store and the blob store exactly as ``orchestrator.connect()`` and the commands do, so
``backup`` reads (and ``restore-backup`` writes) what the running processes use.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from orchestrator.app import AppPlan, ensure_buckets, plan_app, with_s3_storage
from orchestrator.config import Settings
from orchestrator.devstack import ServiceEndpoints
from orchestrator.events import BlobStore
from orchestrator.snapshots import SnapshotCodec, SnapshotStore, open_store
from orchestrator.state import FilesystemBlobStore, S3BlobStore


@dataclass(frozen=True, slots=True)
class Deployment:
    """One deployment's plan and the servers' credentials."""

    plan: AppPlan
    endpoints: ServiceEndpoints

    def s3_client(self, endpoint_url: str | None = None) -> Any:
        from orchestrator.snapshots import make_client

        ep = self.endpoints
        return make_client(
            endpoint_url=endpoint_url or ep.s3_endpoint_url,
            region=ep.s3_region,
            access_key=ep.s3_access_key,
            secret_key=ep.s3_secret_key,
        )

    def snapshot_store(self) -> SnapshotStore:
        """The configured snapshot store (as the snapshotter opens it)."""
        sp = self.plan.snapshots
        if sp.store_url.startswith("s3://"):
            from orchestrator.snapshots import S3SnapshotStore

            bucket, _, prefix = sp.store_url.removeprefix("s3://").partition("/")
            return S3SnapshotStore(
                bucket,
                prefix,
                client=self.s3_client(sp.endpoint_url),
                server_side_encryption="aws:kms" if sp.sse_kms or sp.kms_key else None,
                kms_key_id=sp.kms_key,
            )
        return open_store(sp.store_url)

    def folder(self, url: str, *, create: bool = False) -> SnapshotStore:
        """A backup's folder: ``s3://bucket/prefix`` (with these servers' credentials;
        the bucket made when ``create``) or a directory (``file://`` or a path)."""
        if not url.startswith("s3://"):
            return open_store(url)
        from orchestrator.snapshots import S3SnapshotStore

        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        client = self.s3_client()
        if create:
            ensure_buckets(client, [bucket])
        return S3SnapshotStore(bucket, prefix, client=client)

    def snapshot_codec(self) -> SnapshotCodec:
        """The configured snapshot codec (keys from ``ORCHESTRATOR_SNAPSHOT_KEYS``)."""
        return self.plan.snapshots.codec()

    def blob_store_for(self, uri: str) -> tuple[BlobStore, str] | None:
        """A blob store able to read or write ``uri``, and the key of ``uri`` in it:
        S3 URIs in any bucket; file URIs only under the configured blob folder."""
        parts = urlsplit(uri)
        blobs = self.plan.blobs
        if parts.scheme == "s3":
            endpoint = blobs.endpoint_url if blobs is not None else None
            store = S3BlobStore(self.s3_client(endpoint), parts.netloc, "")
            return store, parts.path.lstrip("/")
        if parts.scheme == "file" and blobs is not None and blobs.root is not None:
            root = Path(blobs.root).resolve()
            path = Path(parts.path).resolve()
            if path.is_relative_to(root):
                return FilesystemBlobStore(root), path.relative_to(root).as_posix()
        return None


def deployment(
    settings: Settings,
    environ: Mapping[str, str],
    *,
    dsn: str | None = None,
    bootstrap: str | None = None,
    s3_endpoint_url: str | None = None,
) -> Deployment:
    """The deployment the configuration and the environment (or the overrides) name;
    ``PlanError`` names what is missing."""
    endpoints = ServiceEndpoints.from_env(environ)
    if s3_endpoint_url and not endpoints.s3_endpoint_url:
        endpoints = ServiceEndpoints.from_env({**environ, "S3_ENDPOINT_URL": s3_endpoint_url})
    endpoints = replace(
        endpoints,
        database_url=dsn or endpoints.database_url,
        kafka_bootstrap=bootstrap or endpoints.kafka_bootstrap,
    )
    settings = with_s3_storage(settings, endpoints)  # as orchestrator.connect() does
    plan = plan_app(
        settings,
        bootstrap=endpoints.kafka_bootstrap,
        dsn=endpoints.database_url,
        node_id="orchestrator-backup",
        s3_endpoint=endpoints.s3_endpoint_url,
        environ=environ,
    )
    return Deployment(plan, endpoints)
