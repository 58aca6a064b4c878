"""The demo's worker process: ``python -m orchestrator.demo.worker SPEC.json``.

It starts the runtime only (the demo process runs the processor and the supervisor),
submits one ``research_assistant`` execution, prints ``{"execution_id": ...}`` and runs
until it is killed, which is the point.
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from orchestrator.app import App, AppOptions, plan_app
from orchestrator.config import load_config
from orchestrator.demo.research import build_pipeline
from orchestrator.devstack import ServiceEndpoints


async def main(spec: dict[str, Any]) -> None:
    settings = load_config(spec["config"]).settings
    endpoints = ServiceEndpoints.from_env(spec["env"])
    pipeline = build_pipeline(page_seconds=spec["page_seconds"])
    plan = plan_app(
        settings,
        bootstrap=endpoints.kafka_bootstrap,
        dsn=endpoints.database_url,
        node_id=spec["node_id"],
        supports_idempotence=endpoints.kafka_supports_idempotence,
        data_dir=Path(spec["data_dir"]),
        projection_name=spec["projection"],
        environ=spec["env"],
    )
    options = AppOptions(
        run_projector=False, run_snapshotter=False, supervise=False, pipelines=[pipeline]
    )
    async with App(plan, settings, options, endpoints=endpoints) as app:
        assert app.orchestrator is not None
        eid = await app.orchestrator.submit(pipeline, spec["context"])
        print(json.dumps({"execution_id": eid}), flush=True)
        await app.wait()


if __name__ == "__main__":
    asyncio.run(main(json.loads(Path(sys.argv[1]).read_text())))
