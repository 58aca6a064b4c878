"""The commands read the settings through the plan ``dev``/``connect()`` use
(``orchestrator.app``): ``snapshots run`` the same triggers, store, layout and codec
(``plan_snapshots``); ``project`` the same topics, tables and input limits
(``plan_projection``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator._cli._snapshot_setup import snapshot_setup
from orchestrator._cli.projections import _settings as project_settings
from orchestrator.app import plan_app, plan_snapshots, snapshot_policy
from orchestrator.config import load_config_file

CONFIG = """
state_management:
  backend: "filesystem"
  config:
    base_path: "{base}"
    organization:
      by_pipeline: true
  snapshots:
    frequency: 50
checkpointing:
  enabled: true
  strategy: "{strategy}"
  progressive:
    after_tasks: ["data_download", "preprocessing"]
    min_interval: 60
  periodic:
    interval: 30
  on_success:
    tasks: ["critical_task_1"]
"""


@pytest.mark.parametrize("strategy", ["progressive", "periodic", "on_success"])
def test_snapshots_run_and_the_app_read_one_policy(tmp_path: Path, strategy: str) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(base=tmp_path / "data", strategy=strategy))
    settings = load_config_file(path).settings
    app = plan_app(settings, bootstrap="127.0.0.1:9092", dsn="postgresql://x/y", node_id="n")
    setup = snapshot_setup(path, None)
    assert setup.policy == app.snapshots.policy == snapshot_policy(settings)
    assert setup.store_url == app.snapshots.store_url == f"file://{tmp_path / 'data'}"
    assert setup.layout == app.snapshots.layout
    assert setup.retention == app.snapshots.retention
    assert setup.file_format == app.snapshots.file_format
    assert plan_snapshots(settings)[0].policy == setup.policy


def test_only_the_chosen_strategy_triggers(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(CONFIG.format(base=tmp_path / "data", strategy="progressive"))
    policy = snapshot_setup(path, None).policy
    assert policy.frequency == 50
    assert policy.after_tasks == {"data_download", "preprocessing"}
    assert policy.on_success_tasks == frozenset()
    assert policy.interval == 300.0  # periodic's 30 s is not the chosen strategy


PROJECT_CONFIG = """
state_management:
  backend: "postgresql"
  config:
    connection_string: "postgresql://db.example/orchestrator"
    schema:
      pipeline_states: "orch.pipeline_states"
      task_states: "orch.task_states"
      checkpoints: "orch.checkpoints"
  event_store:
    topics:
      pipeline_events: "acme.pipeline"
  limits:
    max_record_size: "2MB"
    max_identifier_length: 64
"""


def test_project_runs_the_projection_plan_app_gives_the_app(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(PROJECT_CONFIG)
    settings = load_config_file(path).settings
    app = plan_app(settings, bootstrap="127.0.0.1:9092", dsn=None, node_id="n")
    projection, dsn = project_settings("read_models", path)
    assert projection == app.projection
    assert dsn == app.dsn == "postgresql://db.example/orchestrator"
    assert projection.limits.max_record_bytes == 2 * 1024 * 1024
    assert projection.limits.max_identifier_bytes == 64
    assert projection.tables.checkpoints == "orch.checkpoints"
    assert projection.pipeline_topic == "acme.pipeline"
