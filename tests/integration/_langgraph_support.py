"""A LangGraph saver on the session's services, with topics and a database of its own."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from orchestrator.devstack import ServiceEndpoints


def langgraph_config(prefix: str, *, lease_ttl: float | None = None) -> str:
    """Fresh topics, no snapshots; optionally short leases (for takeover tests)."""
    text = f"""
state_management:
  event_store:
    topics:
      pipeline_events: "{prefix}.pipeline.events"
      shared_events: "{prefix}.shared.events"
    partitions: 2
  snapshots:
    enabled: false
"""
    if lease_ttl is not None:
        text += f"""
recovery:
  strategies:
    pipeline_crash:
      timeout: {2 * lease_ttl}
"""
    return text


def saver_spec(
    services: ServiceEndpoints, dsn: str, tmp_path: Path, **extra: Any
) -> dict[str, Any]:
    """What ``AsyncKafkaSaver.from_config`` needs, as plain data (for a worker too)."""
    prefix = f"lg_{uuid.uuid4().hex[:8]}"
    config = tmp_path / f"{prefix}.yaml"
    config.write_text(langgraph_config(prefix, lease_ttl=extra.pop("lease_ttl", None)))
    return {
        "config": str(config),
        "env": {**services.as_env(), "DATABASE_URL": dsn},
        "data_dir": str(tmp_path / "data"),
        "projection_name": f"rm_{prefix}",
        **extra,
    }


def open_saver(spec: dict[str, Any], **options: Any) -> Any:
    from orchestrator.langgraph import AsyncKafkaSaver

    return AsyncKafkaSaver.from_config(
        spec["config"],
        environ=spec["env"],
        data_dir=spec["data_dir"],
        projection_name=spec["projection_name"],
        **options,
    )
