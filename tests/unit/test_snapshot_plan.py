"""``snapshots run`` and ``dev``/``connect()`` read the snapshot settings through one
plan (``orchestrator.app.plan_snapshots``): the same triggers, store, layout, codec."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator._cli._snapshot_setup import snapshot_setup
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
