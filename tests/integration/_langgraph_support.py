"""A LangGraph saver on the session's services, with topics and a database of its own."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

from _worker import state_management_yaml

from orchestrator.devstack import ServiceEndpoints


def langgraph_config(prefix: str, *, lease_ttl: float | None = None) -> str:
    """Fresh topics, no snapshots; optionally short leases (for takeover tests)."""
    text = state_management_yaml(prefix)
    if lease_ttl is not None:
        text += f"""
recovery:
  strategies:
    pipeline_crash:
      timeout: {2 * lease_ttl}
"""
    return text


MakeSaverSpec = Callable[..., Awaitable[dict[str, Any]]]
"""The `make_saver_spec` fixture: `await make_saver_spec(**extra)` -> a spec."""


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


def chain(state: type, names: Sequence[str], node: Callable[[str], Any]) -> Any:
    """A ``StateGraph`` over ``state`` running ``node(name)`` for each of ``names``, one
    after the other (START, then each name in order, then END)."""
    from langgraph.graph import END, START, StateGraph

    graph = StateGraph(state)
    for name in names:
        graph.add_node(name, node(name))
    for before, after in itertools.pairwise([START, *names, END]):
        graph.add_edge(before, after)
    return graph
