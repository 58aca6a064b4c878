"""Prometheus (Debian's ``prometheus`` package) on loopback, scraping what it is told to.

The configuration is written into the data directory: a short scrape and evaluation
interval, the rule files given (default: the shipped alert rules), and one scrape job
whose targets come from ``targets/*.json`` (file-based discovery, re-read each second), so
:meth:`PrometheusServer.set_targets` can point it at processes started after it.
Each target group's ``job`` becomes the series' ``job`` label.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Unpack

import httpx
import yaml

from orchestrator.monitoring import alert_rules

from ._errors import ToolMissingError
from ._ports import LOOPBACK, free_port
from ._process import ManagedProcess
from ._service import ExecutableOptions, ExecutableService

_TARGETS = "targets"


def find_prometheus() -> str:
    """The ``prometheus`` executable on PATH (Debian: ``apt-get install prometheus``)."""
    found = shutil.which("prometheus")
    if found is None:
        raise ToolMissingError("prometheus", "apt-get install prometheus")
    return found


class PrometheusServer(ExecutableService):
    """Prometheus on 127.0.0.1:<free port>; ``url`` is its HTTP API and UI."""

    name: ClassVar[str] = "prometheus"
    default_stop_grace: ClassVar[float] = 5.0

    def __init__(
        self,
        data_dir: Path | str | None = None,
        *,
        scrape_interval: float = 1.0,
        rules: Mapping[str, str] | None = None,
        **options: Unpack[ExecutableOptions],
    ) -> None:
        super().__init__(data_dir, **options)
        self.scrape_interval = scrape_interval
        #: Rule files by name → YAML text; default: the shipped alert rules.
        self.rules = dict(rules) if rules is not None else {"alerts.yml": alert_rules()}

    @property
    def url(self) -> str:
        return self._address("http://")

    @property
    def description(self) -> str:
        return f"Prometheus (scrape every {self.scrape_interval:g}s)"

    @property
    def config_path(self) -> Path:
        return self.data_dir / "prometheus.yml"

    def config(self) -> dict[str, Any]:
        """The configuration this server runs with (also what ``promtool`` can check)."""
        interval = f"{max(1, round(self.scrape_interval * 1000))}ms"
        return {
            "global": {"scrape_interval": interval, "evaluation_interval": interval},
            "rule_files": sorted(self.rules),
            "scrape_configs": [
                {
                    "job_name": "orchestrator-state",
                    "file_sd_configs": [
                        {"files": [f"{_TARGETS}/*.json"], "refresh_interval": "1s"}
                    ],
                }
            ],
        }

    def set_targets(self, job: str, targets: Sequence[str], **labels: str) -> None:
        """Scrape ``targets`` (``host:port``, path ``/metrics``) as job ``job`` (atomic)."""
        folder = self.data_dir / _TARGETS
        folder.mkdir(parents=True, exist_ok=True)
        group = [{"targets": list(targets), "labels": {"job": job, **labels}}]
        tmp = folder / f".{job}.json.tmp"
        tmp.write_text(json.dumps(group))
        tmp.replace(folder / f"{job}.json")

    def scrape_defaults(self) -> None:
        """Scrape every command on its default metrics port and the API on 8080 (what
        ``services up --prometheus`` does, for ``dev`` or the processes run by hand)."""
        defaults = {"dev": 9470, "processor": 9471, "snapshotter": 9472, "supervisor": 9473}
        for job, port in {**defaults, "api": 8080}.items():
            self.set_targets(f"orchestrator-state-{job}", [f"{LOOPBACK}:{port}"])

    async def query(self, expr: str, params: Mapping[str, str] | None = None) -> Any:
        """``/api/v1/query``: the ``data`` of the answer (raises on an error status)."""
        async with httpx.AsyncClient(base_url=self.url, timeout=10) as client:
            answer = await client.get("/api/v1/query", params={"query": expr, **(params or {})})
        body = answer.json()
        if body.get("status") != "success":
            raise ValueError(f"{expr}: {body.get('errorType')}: {body.get('error')}")
        return body["data"]

    def _find_binary(self) -> str:
        return find_prometheus()

    async def _launch(self) -> ManagedProcess:
        (self.data_dir / _TARGETS).mkdir(parents=True, exist_ok=True)
        for name, text in self.rules.items():
            (self.data_dir / name).write_text(text)
        self.config_path.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        if self._port is None:  # a restart keeps its port
            self._port = free_port()
        args = [
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.data_dir / 'tsdb'}",
            f"--web.listen-address={LOOPBACK}:{self._port}",
            "--storage.tsdb.retention.time=1d",
        ]
        return self._run(args)

    async def _probe(self) -> None:
        async with httpx.AsyncClient(timeout=2) as client:
            answer = await client.get(f"{self.url}/-/ready")
        answer.raise_for_status()
