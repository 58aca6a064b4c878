"""The stack of one process, built from the configuration: ``plan_app`` then ``App``.

``plan_app(settings, bootstrap=..., dsn=..., node_id=...)`` maps the loaded settings to
what each component is built with (the mapping is tabled in ``orchestrator.app.plan``);
``App(plan, settings, AppOptions(...))`` starts the pieces this process runs.
"""

from orchestrator.app.app import App, AppOptions
from orchestrator.app.consistency import ConfiguredStateManager
from orchestrator.app.errors import PlanError
from orchestrator.app.plan import (
    AppPlan,
    PostgresPlan,
    lease_ttl_for,
    plan_app,
    plan_postgres,
    plan_projection,
    policies_from,
)
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

__all__ = [
    "App",
    "AppOptions",
    "AppPlan",
    "BlobPlan",
    "ConfiguredStateManager",
    "PlanError",
    "PostgresPlan",
    "SnapshotPlan",
    "blob_store",
    "ensure_buckets",
    "key_ring",
    "lease_ttl_for",
    "plan_app",
    "plan_buckets",
    "plan_postgres",
    "plan_projection",
    "plan_snapshots",
    "policies_from",
    "s3_client",
    "snapshot_policy",
    "snapshot_store",
    "with_s3_storage",
]
