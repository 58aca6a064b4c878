"""``orchestrator-state bench compare --json`` runs every workload against the peers.

A smoke test with tiny sizes (figures are printed by the bench, never asserted): every
workload row is there, with numbers where a peer exists. Skipped when the ``compare``
extra (LangGraph's Postgres checkpointer, DBOS, eventsourcing) is not installed: it is
heavy and not part of ``dev``.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from _projector_support import CLI

from orchestrator.bench.compare import INSTALL, missing_peers
from orchestrator.devstack import ServiceEndpoints

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WORKLOADS = {
    "checkpoint_c1_p50",
    "checkpoint_c100_throughput",
    "langgraph_saver_c1_p50",
    "langgraph_saver_c100_throughput",
    "task_overhead",
    "append_throughput",
    "restore_latest_100k",
    "restore_latest_100k_cold",
    "resume_after_kill",
    "storage_growth",
}

TINY = [
    "--rounds", "1",
    "--warmup-saves", "10",
    "--checkpoint-saves", "30",
    "--checkpoint-executions", "5",
    "--checkpoint-per-execution", "4",
    "--saver-saves", "20",
    "--saver-threads", "5",
    "--saver-per-thread", "3",
    "--overhead-runs", "2",
    "--append-events", "2000",
    "--append-warmup", "500",
    "--restore-events", "1000",
    "--restore-small-events", "0",
    "--restore-samples", "5",
    "--storage-steps", "10",
    "--fold-events", "0",
]  # fmt: skip


@pytest.mark.timeout(600)
def test_compare_json_has_every_workload_row_with_numbers(services: ServiceEndpoints) -> None:
    missing = missing_peers()
    if missing:
        pytest.skip(f"the compare extra is not installed ({', '.join(missing)}): {INSTALL}")
    done = subprocess.run(
        [*CLI, "bench", "compare", "--json", *TINY],
        env={**os.environ, **services.as_env()},
        capture_output=True,
        text=True,
        timeout=560,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(done.stdout)
    assert {r["workload"] for r in rows} >= WORKLOADS
    for row in rows:
        if row["workload"] not in WORKLOADS:
            continue
        assert set(row) >= {"workload", "peer", "ours", "theirs", "unit", "advantage"}
        for field in ("ours", "theirs", "advantage"):
            assert isinstance(row[field], int | float) and row[field] > 0, row
    peers = {r["peer"] for r in rows if r["workload"] == "resume_after_kill"}
    assert len(peers) == 2, peers
