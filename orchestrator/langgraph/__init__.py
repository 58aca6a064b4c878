"""LangGraph on the event log: ``AsyncKafkaSaver`` (a checkpointer).

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

__all__ = ["AsyncKafkaSaver"]
