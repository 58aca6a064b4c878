"""orchestrator: the public face (state API, runtime, config, CLI, dev stack).

``from orchestrator import Orchestrator`` works as the seed writes it; the runtime is
imported lazily so ``import orchestrator.config`` stays free of Kafka and PostgreSQL
drivers.
"""

from __future__ import annotations

from typing import Any

_RUNTIME = frozenset(
    {"Orchestrator", "Pipeline", "TaskContext", "PipelineResult", "PipelineFailed", "TaskError"}
)


def __getattr__(name: str) -> Any:
    if name in _RUNTIME:
        from orchestrator import runtime

        return getattr(runtime, name)
    raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")


__all__ = sorted(_RUNTIME)
