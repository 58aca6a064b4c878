"""The process's metrics: seed names, selection, exposition, and the dashboards' queries."""

from __future__ import annotations

import re
import urllib.request
from collections.abc import Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from orchestrator.config import ConfigError, load_config
from orchestrator.config.models import KNOWN_DASHBOARDS, KNOWN_METRICS
from orchestrator.events import metrics
from orchestrator.events.metrics_server import MetricsAddress, serve
from orchestrator.monitoring import DASHBOARDS, dashboard, export, panel_queries


@pytest.fixture(autouse=True)
def _every_metric_exported() -> Iterator[None]:
    yield
    metrics.select(KNOWN_METRICS)


def _names(text: str) -> set[str]:
    return {s.name for f in text_string_to_metric_families(text) for s in f.samples}


def test_every_seed_name_maps_to_prometheus_names_with_the_prefix() -> None:
    assert set(metrics.SEED_METRICS) == set(KNOWN_METRICS)
    for families in metrics.SEED_METRICS.values():
        for name in families:
            assert name.startswith("orchestrator_state_")


def test_the_selection_restricts_what_is_exported() -> None:
    metrics.record_operation("writer", "start_task", 0.002)
    metrics.record_cache_request("l1", hit=True)

    everything = _names(metrics.render().decode())
    metrics.select(["cache_hit_rate"])
    chosen = _names(metrics.render().decode())

    assert "orchestrator_state_operations_total" in everything
    assert "orchestrator_state_operation_duration_seconds_count" in everything
    assert "orchestrator_state_cache_requests_total" in chosen
    assert "orchestrator_state_operations_total" not in chosen
    assert "orchestrator_state_operation_duration_seconds_count" not in chosen
    assert "process_cpu_seconds_total" in chosen  # the process collectors always are


def test_an_unknown_seed_name_is_refused() -> None:
    with pytest.raises(ValueError, match="cache_hits"):
        metrics.select(["cache_hits"])


def test_the_metrics_server_serves_the_selected_registry() -> None:
    metrics.start_recovery()
    server = serve("127.0.0.1:0")
    try:
        body = urllib.request.urlopen(server.url, timeout=5).read().decode()
    finally:
        server.close()
    assert 'orchestrator_state_recovery_attempts_total{kind="task_retry",outcome="failed"}' in body


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("9471", MetricsAddress("127.0.0.1", 9471)),
        ("0.0.0.0:9471", MetricsAddress("0.0.0.0", 9471)),
        ("[::1]:0", MetricsAddress("::1", 0)),
        ("off", None),
    ],
)
def test_metrics_addresses(text: str, expected: MetricsAddress | None) -> None:
    assert MetricsAddress.parse(text) == expected


def test_a_malformed_metrics_address_is_refused() -> None:
    with pytest.raises(ValueError, match="HOST:PORT"):
        MetricsAddress.parse("localhost:http")


def test_the_seeds_four_dashboards_exist_and_query_only_our_metrics() -> None:
    known = {n.removesuffix("_total") for fams in metrics.SEED_METRICS.values() for n in fams}
    known |= {n.removesuffix("_total") for n in metrics.ALWAYS}
    assert DASHBOARDS == KNOWN_DASHBOARDS
    for name in DASHBOARDS:
        model = dashboard(name)
        queries = list(panel_queries(model))
        assert len(queries) >= len(model["panels"]) >= 4
        for title, expr in queries:
            used = set(re.findall(r"\b(orchestrator_state_[a-z_]+)", expr))
            assert used or re.search(r"\b(up|process_[a-z_]+)\b", expr), (name, title)
            for metric in used:
                base = re.sub(r"_(bucket|count|sum|total)$", "", metric)
                assert base in known, (name, title, metric)


def test_monitoring_dashboards_refuses_an_unknown_name() -> None:
    with pytest.raises(ConfigError, match="dashboards"):
        load_config("monitoring:\n  dashboards: [state_overview, my_board]\n")


def test_export_writes_the_configured_dashboards(tmp_path) -> None:  # type: ignore[no-untyped-def]
    written = export(tmp_path, ["recovery_timeline"])
    assert sorted(p.name for p in written) == [
        "alerts.yml",
        "prometheus.yml",
        "recovery_timeline.json",
    ]
