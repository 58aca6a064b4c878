"""The seed's YAML blocks map to real behaviour (``orchestrator.app.plan``).

The first tests plan every seed block without connecting anywhere and check what each
setting becomes; the last one starts an ``App`` and reads the result back from Kafka
and PostgreSQL (topic configs, table names, pool size).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from _databases import MakeDatabase
from _worker import plan_on
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from orchestrator.app import (
    App,
    AppOptions,
    AppPlan,
    PlanError,
    blob_store,
    plan_app,
    snapshot_store,
)
from orchestrator.config import ConfigError, load_config, load_config_file
from orchestrator.devstack import ServiceEndpoints
from orchestrator.runtime import Pipeline
from orchestrator.state import S3BlobStore

SEED = Path(__file__).parents[2] / "examples" / "seed"
DAYS = 86_400_000


def plan_of(name: str, **overrides: Any) -> AppPlan:
    settings = load_config_file(SEED / f"{name}.yaml").settings
    kwargs: dict[str, Any] = {
        "bootstrap": "kafka:9092",
        "dsn": "postgresql://db/x",
        "node_id": "n1",
    }
    kwargs.update(overrides)
    return plan_app(settings, **kwargs)


@pytest.mark.parametrize("path", sorted(SEED.glob("*.yaml")), ids=lambda p: p.stem)
def test_every_seed_block_plans_or_is_refused_by_name(path: Path) -> None:
    try:
        settings = load_config_file(path).settings
    except ConfigError as refused:  # the seed's state documents: "not a setting"
        assert all("not a setting" in issue.message for issue in refused.issues)
        return
    if settings.state_management.backend == "memory":  # in-process only: connect() runs it
        with pytest.raises(PlanError, match=r'connect\(backend="memory"\)'):
            plan_app(settings, bootstrap="kafka:9092", dsn="postgresql://db/x", node_id="n1")
        return
    plan = plan_app(settings, bootstrap="kafka:9092", dsn="postgresql://db/x", node_id="n1")
    assert plan.topics.pipeline.name and plan.policies.retry.max_attempts >= 1


def test_database_backend_sets_tables_pool_size_and_dsn() -> None:
    plan = plan_of("05_database_backend", dsn=None)
    assert plan.dsn == "postgresql://user:pass@localhost/orchestrator"
    assert plan.pool_size == 20
    assert plan.projection.tables.pipeline_states == "public.pipeline_states"
    assert plan_of("05_database_backend", dsn="postgresql://env/db").dsn == "postgresql://env/db"


def test_s3_backend_puts_snapshots_and_blobs_in_the_bucket_with_kms() -> None:
    plan = plan_of("07_s3_backend", s3_endpoint="http://s3:9000")
    assert plan.snapshots.store_url == "s3://orchestrator-state/states"
    assert plan.snapshots.kms_key == "alias/orchestrator"
    assert plan.snapshots.endpoint_url == "http://s3:9000"
    assert (
        plan.snapshots.lifecycle.transition_to_glacier,
        plan.snapshots.lifecycle.expiration,
    ) == (
        30,
        365,
    )
    assert plan.blobs is not None
    assert (plan.blobs.bucket, plan.blobs.prefix) == ("orchestrator-state", "")


def test_s3_encryption_without_a_key_still_asks_for_sse_kms() -> None:

    settings = load_config(
        "state_management:\n  backend: s3\n  config:\n    bucket: b\n"
        "    encryption:\n      enabled: true\n",
        "<test>",
    ).settings
    plan = plan_app(settings, bootstrap="kafka:9092", dsn="postgresql://db/x", node_id="n1")
    store = snapshot_store(plan, ServiceEndpoints())

    assert (plan.snapshots.sse_kms, plan.snapshots.kms_key) == (True, None)
    assert store.put_arguments == {"ServerSideEncryption": "aws:kms"}  # the default key


def test_filesystem_backend_organizes_snapshots_and_retention() -> None:
    plan = plan_of("04_file_system_backend")
    assert plan.snapshots.store_url == "file:///var/lib/orchestrator/state"
    assert (plan.snapshots.layout.by_pipeline, plan.snapshots.layout.by_date) == (True, True)
    assert plan.snapshots.retention.retention_days == 30
    assert plan.blobs is not None and plan.blobs.root == "/var/lib/orchestrator/state/blobs"
    # format and compression act on the files: a JSON envelope, gzip-compressed snapshots
    assert (plan.snapshots.file_format, plan.snapshots.algorithm) == ("json", "gzip")
    assert plan.snapshots.compress and not plan.notes


def test_automatic_checkpointing_becomes_the_runtime_and_snapshot_policies() -> None:
    plan = plan_of("08_automatic_checkpointing")
    ck = plan.policies.checkpoints
    assert ck.strategy == "progressive" and ck.min_interval == 60
    assert ck.after_tasks == {"data_download", "preprocessing", "model_training"}
    assert ck.after_task("preprocessing", now=100.0, last_auto=None)
    assert not ck.after_task("preprocessing", now=100.0, last_auto=50.0)  # min_interval
    assert not ck.after_task("other", now=100.0, last_auto=None)
    sp = plan.snapshots
    assert sp.encrypt and sp.compress
    assert sp.policy.after_tasks == ck.after_tasks and sp.policy.min_interval == 60
    assert (sp.retention.max_checkpoints, sp.retention.max_age_days) == (10, 7)


def test_automatic_recovery_becomes_retry_supervisor_and_health_settings() -> None:
    plan = plan_of("09_automatic_recovery")
    retry, rec = plan.policies.retry, plan.policies.recovery
    assert (retry.max_attempts, retry.backoff) == (3, "exponential")
    assert [retry.delay(n) <= 2 ** (n - 1) for n in (1, 2, 3)] == [True] * 3
    assert (rec.crash_timeout, rec.failover_timeout) == (300, 60)
    assert (rec.health_interval, rec.health_timeout, rec.failure_threshold) == (30, 10, 3)
    assert rec.node_ttl == 90  # a node is failed after 3 missed heartbeats of 30 s
    assert plan.state.writer.lease_ttl == 30


def test_replication_becomes_topic_replication_and_min_insync_replicas() -> None:
    plan = plan_of("10_state_synchronization")
    for spec in plan.topics.specs():
        assert (spec.replication_factor, spec.min_insync_replicas) == (3, 2)
    assert plan.consistency == "eventual" and plan.conflict_resolution == "last_write_wins"
    capped = plan_of("10_state_synchronization", max_replication=1)
    assert (
        capped.topics.pipeline.replication_factor,
        capped.topics.pipeline.min_insync_replicas,
    ) == (
        1,
        1,
    )
    assert len(capped.notes) == 2


def test_event_sourcing_sets_topics_retention_and_snapshots() -> None:
    plan = plan_of("11_event_sourcing")
    pipeline = plan.topics.pipeline
    assert pipeline.name == "orchestrator.pipeline.events"
    assert pipeline.retention_ms == 30 * DAYS
    assert pipeline.configs["retention.bytes"] == str(100 * 1024**3 // pipeline.partitions)
    assert plan.snapshots.policy.frequency == 100
    assert plan.snapshots.store_url == "s3://orchestrator-snapshots"


def test_compression_sets_user_data_and_snapshot_compression() -> None:
    plan = plan_of("13_state_compression")
    user_data = plan.state.writer.user_data
    assert (user_data.compress_threshold, user_data.compression_level) == (1024, 3)
    assert (plan.snapshots.level, plan.snapshots.min_size) == (3, 1024)
    assert (user_data.algorithm, plan.snapshots.algorithm) == ("zstd", "zstd")
    assert user_data.exclude_fields == ("metadata", "small_values")
    assert not any("exclude_fields" in note for note in plan.notes)


async def topic_configs(bootstrap: str, topic: str) -> Mapping[str, str]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        [response] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        await admin.close()
    [resource] = response.resources
    return {name: value for name, value, *_ in resource[4]}


async def test_an_app_applies_topic_configs_table_names_and_pool_size(
    services: ServiceEndpoints, make_database: MakeDatabase, tmp_path: Path
) -> None:
    prefix = f"test-wiring-{uuid.uuid4().hex[:8]}"
    text = f"""
state_management:
  backend: "postgresql"
  config:
    pool_size: 3
    schema:
      pipeline_states: "public.my_pipeline_states"
      task_states: "public.my_task_states"
      checkpoints: "public.my_checkpoints"
  event_store:
    topics:
      pipeline_events: "{prefix}.pipeline.events"
      shared_events: "{prefix}.shared.events"
    retention:
      days: 30
      size: "100GB"
    partitions: 2
  snapshots:
    enabled: false
distributed:
  synchronization:
    replication:
      factor: 3
      min_replicas: 2
"""
    settings = load_config(text).settings
    dsn = await make_database(migrated=False)
    plan = plan_on(
        services, settings, dsn=dsn, node_id="wiring-node", data_dir=tmp_path, max_replication=1
    )
    pipeline = Pipeline("wiring_pipeline")

    @pipeline.task()
    async def only() -> str:
        return "ok"

    options = AppOptions(join_recovery=False)
    async with App(plan, settings, options, endpoints=services) as app:
        assert app.pool is not None and app.orchestrator is not None
        assert app.pool.get_max_size() == 3
        result = await app.orchestrator.run_pipeline(pipeline)
        state = await app.state_manager().get_pipeline_state(
            result.execution_id, consistency="strong"
        )
        assert state.status == "completed"

    conn = await asyncpg.connect(dsn)
    try:
        status = await conn.fetchval(
            "SELECT status FROM public.my_pipeline_states WHERE execution_id = $1",
            result.execution_id,
        )
        tasks = await conn.fetchval("SELECT count(*) FROM public.my_task_states")
    finally:
        await conn.close()
    assert (status, tasks) == ("completed", 1)
    configs = await topic_configs(services.kafka_bootstrap or "", f"{prefix}.pipeline.events")
    assert configs["min.insync.replicas"] == "1"  # min_replicas 2, capped at the 1 broker here
    assert configs["retention.ms"] == str(30 * DAYS)
    assert configs["retention.bytes"] == str(100 * 1024**3 // 2)


def test_s3_region_reaches_every_client_the_app_builds() -> None:
    from orchestrator.app import App

    settings = load_config(
        "state_management:\n  backend: s3\n  config:\n    bucket: b\n    region: eu-west-3\n",
        "<test>",
    ).settings
    plan = plan_app(settings, bootstrap="kafka:9092", dsn="postgresql://db/x", node_id="n1")
    assert plan.s3_region == "eu-west-3"
    app = App(plan, settings)
    snapshots = snapshot_store(app.plan, app.endpoints)
    blobs = blob_store(app.plan, app.endpoints)
    assert snapshots._client.meta.region_name == "eu-west-3"  # type: ignore[attr-defined]
    assert isinstance(blobs, S3BlobStore) and blobs.client.meta.region_name == "eu-west-3"
    # Not set: the environment's region (AWS_DEFAULT_REGION, else us-east-1) is used.
    unset = load_config("state_management:\n  backend: s3\n  config:\n    bucket: b\n", "<t>")
    plan = plan_app(unset.settings, bootstrap="k:1", dsn="postgresql://d/x", node_id="n")
    assert plan.s3_region is None


def test_pattern_event_sourcing_is_accepted_and_anything_else_refused_by_name() -> None:
    assert load_config("state_management:\n  pattern: event_sourcing\n", "<t>").settings
    for other in ("crud", "cqrs", "state_store"):
        with pytest.raises(ConfigError) as info:
            load_config(f"state_management:\n  pattern: {other}\n", "<t>")
        [issue] = info.value.issues
        assert issue.option == "state_management.pattern"
        assert "event_sourcing" in str(info.value)


def test_filesystem_format_and_compression_reach_the_store_and_codec(tmp_path: Path) -> None:
    from orchestrator.snapshots import FilesystemSnapshotStore

    settings = load_config(
        f"state_management:\n  backend: filesystem\n  config:\n    base_path: {tmp_path}\n"
        "    format: msgpack\n    compression: lz4\n",
        "<test>",
    ).settings
    plan = plan_app(settings, bootstrap="kafka:9092", dsn="postgresql://db/x", node_id="n1")
    store = snapshot_store(plan, ServiceEndpoints())
    assert isinstance(store, FilesystemSnapshotStore) and store.file_format == "msgpack"
    assert (plan.snapshots.algorithm, plan.snapshots.compress) == ("lz4", True)
    off = load_config(
        "state_management:\n  backend: filesystem\n  config:\n    compression: none\n", "<t>"
    ).settings
    assert not plan_app(
        off, bootstrap="k:1", dsn="postgresql://d/x", node_id="n"
    ).snapshots.compress
