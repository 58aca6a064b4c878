"""`orchestrator-state topics ensure|describe` and `migrate` against real servers: every
topic the configuration implies is created (events and DLQs) with the computed
settings; a mismatch on an existing topic is reported by name and setting with its fix,
before anything is created."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import asyncpg
from typer.testing import CliRunner

from orchestrator.cli import app
from orchestrator.devstack import create_topic
from orchestrator.events.topics import TopicsConfig, TopicSpec, ensure_topics_report

runner = CliRunner()


def _config(tmp_path: Path, prefix: str, partitions: int = 2) -> Path:
    path = tmp_path / "orchestrator.yaml"
    path.write_text(
        "state_management:\n  event_store:\n"
        f"    partitions: {partitions}\n"
        f"    topics:\n      pipeline_events: {prefix}.pipeline\n"
        f"      shared_events: {prefix}.shared\n"
    )
    return path


def _run(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_ensure_creates_every_topic_then_describe_reports_them(
    kafka: Any, topic: str, tmp_path: Path
) -> None:
    config = _config(tmp_path, topic)
    common = ("--bootstrap-servers", kafka.bootstrap_servers, "--config", str(config))
    first = _run("topics", "ensure", *common, "--json")
    assert first.exit_code == 0, first.output
    created = json.loads(first.output)
    names = {t["name"] for t in created["topics"] if t["created"]}
    assert names == {
        f"{topic}.pipeline",
        f"{topic}.pipeline.dlq",
        f"{topic}.shared",
        f"{topic}.shared.dlq",
    }
    described = _run("topics", "describe", *common, "--json")
    assert described.exit_code == 0, described.output
    report = json.loads(described.output)
    assert report["problems"] == []
    expected_rf = min(3, report["brokers"])
    for t in report["topics"]:
        assert t["exists"] and t["actual"]["replication_factor"] == expected_rf
        assert t["expected"]["min_insync_replicas"] == min(2, expected_rf)
    pipeline = next(t for t in report["topics"] if t["name"] == f"{topic}.pipeline")
    assert pipeline["actual"]["partitions"] == 2
    again = _run("topics", "ensure", *common, "--strict")
    assert again.exit_code == 0, again.output


async def test_a_partition_mismatch_is_reported_with_its_fix_before_creating_anything(
    kafka: Any, topic: str, tmp_path: Path
) -> None:
    await create_topic(kafka.bootstrap_servers, f"{topic}.pipeline", partitions=5)
    config = _config(tmp_path, topic, partitions=2)
    common = ("--bootstrap-servers", kafka.bootstrap_servers, "--config", str(config))
    result = await _in_thread("topics", "ensure", *common)
    assert result.exit_code == 1
    assert f"{topic}.pipeline" in result.output and "partitions is 5, expected 2" in result.output
    assert "fix:" in result.output and "Traceback" not in result.output
    described = await _in_thread("topics", "describe", *common, "--json")
    report = json.loads(described.output)
    assert [t["name"] for t in report["topics"] if t["exists"]] == [f"{topic}.pipeline"]


async def test_weaker_settings_on_an_existing_topic_are_reported_not_fatal(
    kafka: Any, topic: str, tmp_path: Path
) -> None:
    await create_topic(
        kafka.bootstrap_servers,
        f"{topic}.pipeline",
        partitions=2,
        config={"retention.ms": "60000", "min.insync.replicas": "1"},
    )
    config = _config(tmp_path, topic, partitions=2)
    (tmp_path / "orchestrator.yaml").write_text(
        config.read_text()
        + "distributed:\n  synchronization:\n    replication:\n      min_replicas: 1\n"
    )
    common = ("--bootstrap-servers", kafka.bootstrap_servers, "--config", str(config))
    args = ("topics", "ensure", *common)
    result = await _in_thread(*args)
    assert result.exit_code == 0, result.output
    assert "retention.ms is 60000" in result.output
    assert f"kafka-configs.sh --bootstrap-server {kafka.bootstrap_servers}" in result.output
    assert (await _in_thread(*args, "--strict")).exit_code == 1
    check = await _in_thread(
        "config",
        "check",
        str(config),
        "--no-effective",
        "--bootstrap-servers",
        kafka.bootstrap_servers,
    )
    assert check.exit_code == 0, check.output
    assert "retention.ms is 60000" in check.output and "min_replicas 1" in check.output


async def test_migrate_applies_then_reports_status(make_database: Any) -> None:
    dsn = await make_database(migrated=False)
    status = await _in_thread("migrate", "--database-url", dsn, "--status", "--json")
    assert status.exit_code == 0, status.output
    assert all(m["applied_at"] is None for m in json.loads(status.output))
    applied = await _in_thread("migrate", "--database-url", dsn)
    assert applied.exit_code == 0, applied.output
    after = json.loads(
        (await _in_thread("migrate", "--database-url", dsn, "--status", "--json")).output
    )
    assert after and all(m["applied_at"] is not None for m in after)
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT to_regclass('runtime_nodes') IS NOT NULL")
    finally:
        await conn.close()


async def _in_thread(*args: str) -> Any:
    """The CLI runs its own event loop: call it off this test's loop."""
    import asyncio

    return await asyncio.to_thread(_run, *args)


async def test_a_consumer_reports_another_partition_count_and_runs(kafka: Any, topic: str) -> None:
    """`project` and `snapshots run` only read: another count is reported, not refused."""
    await create_topic(kafka.bootstrap_servers, f"{topic}.pipeline", partitions=5)
    layout = TopicsConfig(pipeline=TopicSpec(name=f"{topic}.pipeline", partitions=2))
    report = await ensure_topics_report(kafka.bootstrap_servers, layout.specs(), strict=False)
    found = [p for p in report.problems if p.setting == "partitions"]
    assert [(p.topic, p.actual, p.blocking) for p in found] == [(f"{topic}.pipeline", 5, False)]
    assert f"{topic}.pipeline.dlq" in report.created
