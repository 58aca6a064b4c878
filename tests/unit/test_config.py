"""The seed's YAML blocks load as written; bad options fail with their position."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.config import ConfigError, ConfigIssue, load_config, load_config_file

SEED_BLOCKS = sorted((Path(__file__).resolve().parents[2] / "examples" / "seed").glob("*.yaml"))


def only_issue(text: str, source: str) -> ConfigIssue:
    """The one issue ``load_config`` refuses ``text`` with."""
    with pytest.raises(ConfigError) as info:
        load_config(text, source, environ={})
    [issue] = info.value.issues
    return issue


def test_every_seed_block_is_present() -> None:
    assert len(SEED_BLOCKS) == 14


def test_event_sourcing_block_maps_to_settings_with_its_task_topic() -> None:
    path = next(p for p in SEED_BLOCKS if "event_sourcing" in p.name)
    loaded = load_config_file(path, environ={})
    sm = loaded.settings.state_management
    assert sm.pattern == "event_sourcing"
    assert sm.event_store.topics.pipeline_events == "orchestrator.pipeline.events"
    assert sm.snapshots.frequency == 100
    assert sm.snapshots.storage == "s3://orchestrator-snapshots"
    assert sm.event_store.topics.task_events == "orchestrator.task.events"
    assert loaded.warnings == []


def test_database_backend_is_typed() -> None:
    path = next(p for p in SEED_BLOCKS if "database_backend" in p.name)
    backend = load_config_file(path, environ={}).settings.backend()
    assert backend is not None
    assert backend.schema_.pipeline_states == "public.pipeline_states"  # type: ignore[attr-defined]
    assert backend.pool_size == 20  # type: ignore[attr-defined]


def test_unknown_option_is_refused_with_its_position() -> None:
    text = (
        "checkpointing:\n  enabled: true\n  strategy: progressive\n"
        "  progresive:\n    min_interval: 5\n"
    )
    issue = only_issue(text, "pipeline.yaml")
    assert issue.option == "checkpointing.progresive"
    assert str(issue.mark) == "pipeline.yaml:4:3"


def test_every_error_is_reported_at_once() -> None:
    text = (
        "checkpointing:\n  strategy: sometimes\n"
        "recovery:\n  strategies:\n    task_failure:\n      max_attempts: 0\n"
        "compression:\n  algorithm: brotli\n"
    )
    with pytest.raises(ConfigError) as info:
        load_config(text, "c.yaml", environ={})
    options = {i.option for i in info.value.issues}
    assert options == {
        "checkpointing.strategy",
        "recovery.strategies.task_failure.max_attempts",
        "compression.algorithm",
    }


def test_backend_config_errors_point_into_the_config_block() -> None:
    text = "state_management:\n  backend: filesystem\n  config:\n    format: pickle\n"
    issue = only_issue(text, "fs.yaml")
    assert issue.option == "state_management.config.format"
    assert "arbitrary code" in issue.message
    assert issue.mark is not None and issue.mark.line == 4


def test_environment_overrides_the_file() -> None:
    text = "checkpointing:\n  periodic:\n    interval: 300\n"
    env = {"ORCHESTRATOR_CHECKPOINTING__PERIODIC__INTERVAL": "60"}
    assert load_config(text, environ=env).settings.checkpointing.periodic.interval == 60


def test_yaml_syntax_error_names_its_line() -> None:
    with pytest.raises(ConfigError) as info:
        load_config("recovery:\n  enabled: [true\n", "bad.yaml", environ={})
    assert "bad.yaml" in str(info.value)


def test_input_limits_reach_the_processor_settings() -> None:
    from orchestrator.app.plan import plan_app

    text = (
        "state_management:\n  limits:\n    max_record_size: 2MB\n"
        "    max_user_data_size: 64MB\n    max_identifier_length: 128\n"
        "    max_dead_letter_size: 256KB\n"
    )
    settings = load_config(text, "limits.yaml", environ={}).settings
    plan = plan_app(settings, bootstrap="127.0.0.1:9092", dsn="postgresql://x", node_id="n")
    limits = plan.projection.limits
    assert (limits.max_record_bytes, limits.max_user_data_bytes) == (2 * 1024**2, 64 * 1024**2)
    assert limits.max_identifier_bytes == 128
    assert plan.projection.max_dead_letter_bytes == 256 * 1024


def test_an_input_limit_out_of_range_is_refused_by_name() -> None:
    text = "state_management:\n  limits:\n    max_user_data_size: 5GB\n"
    issue = only_issue(text, "limits.yaml")
    assert issue.option == "state_management.limits.max_user_data_size"
