"""The stack of one process, built from the configuration: ``plan_app`` then ``App``.

``plan_app(settings, bootstrap=..., dsn=..., node_id=...)`` maps the loaded settings to
what each component is built with (the mapping is tabled in ``orchestrator.app.plan``);
``App(plan, settings, AppOptions(...))`` starts the pieces this process runs.
"""

from orchestrator.app.app import App
from orchestrator.app.blobretention import blob_retention, blob_store_beside
from orchestrator.app.connections import apply_migrations, dsn_address, open_pool
from orchestrator.app.errors import PlanError
from orchestrator.app.manager import ConfiguredStateManager
from orchestrator.app.options import AppOptions
from orchestrator.app.plan import (
    AppPlan,
    PostgresPlan,
    lease_ttl_for,
    plan_app,
    plan_postgres,
    plan_projection,
    policies_from,
)
from orchestrator.app.redis_backend import redis_store, redis_url
from orchestrator.app.snapshot_plan import BlobPlan, SnapshotPlan, plan_snapshots, snapshot_policy
from orchestrator.app.stores import (
    blob_store,
    ensure_buckets,
    key_ring,
    plan_buckets,
    s3_client,
    snapshot_store,
    with_s3_storage,
)
from orchestrator.app.topics import (
    describe_configured_topics,
    ensure_configured_topics,
    topics_from,
    weaker_than_default,
)

__all__ = [
    "App",
    "AppOptions",
    "AppPlan",
    "BlobPlan",
    "ConfiguredStateManager",
    "PlanError",
    "PostgresPlan",
    "SnapshotPlan",
    "apply_migrations",
    "blob_retention",
    "blob_store",
    "blob_store_beside",
    "describe_configured_topics",
    "dsn_address",
    "ensure_buckets",
    "ensure_configured_topics",
    "key_ring",
    "lease_ttl_for",
    "open_pool",
    "plan_app",
    "plan_buckets",
    "plan_postgres",
    "plan_projection",
    "plan_snapshots",
    "policies_from",
    "redis_store",
    "redis_url",
    "s3_client",
    "snapshot_policy",
    "snapshot_store",
    "topics_from",
    "weaker_than_default",
    "with_s3_storage",
]
