"""LangGraph on the event log: ``AsyncKafkaSaver`` (a checkpointer) and
``AsyncKafkaStore`` (long-term memory on shared state).

Needs the optional extra: ``pip install 'orchestrator-state[langgraph]'``.
"""

from __future__ import annotations

try:
    import langgraph.checkpoint.base  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "orchestrator.langgraph needs LangGraph: pip install 'orchestrator-state[langgraph]'"
    ) from exc

from orchestrator.langgraph.saver import AsyncKafkaSaver
from orchestrator.langgraph.store import AsyncKafkaStore

__all__ = ["AsyncKafkaSaver", "AsyncKafkaStore"]
