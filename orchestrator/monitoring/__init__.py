"""The seed's dashboards (Grafana JSON), Prometheus alert rules and a sample scrape config.

They ship in the wheel (``dashboards/*.json``, ``prometheus/alerts.yml``,
``prometheus/prometheus.yml``). :func:`export` writes the dashboards that
``monitoring.dashboards`` names, with the rules and the sample config, into a folder
a Grafana provisioning directory or a Prometheus ``rule_files`` entry can point at
(``orchestrator-state monitoring export``). Metric names: ``orchestrator.events.metrics``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from importlib import resources
from pathlib import Path
from typing import Any

from orchestrator.config import KNOWN_DASHBOARDS

__all__ = ["DASHBOARDS", "alert_rules", "dashboard", "export", "panel_queries", "scrape_config"]

DASHBOARDS = KNOWN_DASHBOARDS


def _text(*parts: str) -> str:
    return resources.files(__name__).joinpath(*parts).read_text(encoding="utf-8")


def dashboard(name: str) -> dict[str, Any]:
    """One dashboard's Grafana JSON model (``name``: one of :data:`DASHBOARDS`)."""
    if name not in DASHBOARDS:
        raise ValueError(f"unknown dashboard {name!r}; known: {', '.join(DASHBOARDS)}")
    model: dict[str, Any] = json.loads(_text("dashboards", f"{name}.json"))
    return model


def panel_queries(model: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """``(panel title, expr)`` of every target of every panel (rows' panels included)."""
    for panel in model.get("panels", []):
        for inner in (panel, *panel.get("panels", [])):
            for target in inner.get("targets", []):
                if target.get("expr"):
                    yield inner["title"], target["expr"]


def alert_rules() -> str:
    """The Prometheus rules file (YAML): lag, DLQ growth, recovery failures, snapshot age."""
    return _text("prometheus", "alerts.yml")


def scrape_config() -> str:
    """A sample ``prometheus.yml`` scraping every process on its default port."""
    return _text("prometheus", "prometheus.yml")


def export(folder: Path, dashboards: Iterable[str] = DASHBOARDS) -> list[Path]:
    """Write the chosen dashboards, ``alerts.yml`` and ``prometheus.yml`` into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "dashboards").mkdir(exist_ok=True)
    written: list[Path] = []
    for name in dict.fromkeys(dashboards):
        path = folder / "dashboards" / f"{name}.json"
        path.write_text(json.dumps(dashboard(name), indent=2) + "\n", encoding="utf-8")
        written.append(path)
    for name, text in (("alerts.yml", alert_rules()), ("prometheus.yml", scrape_config())):
        (folder / name).write_text(text, encoding="utf-8")
        written.append(folder / name)
    return written
