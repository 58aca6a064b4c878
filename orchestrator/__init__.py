"""orchestrator: the public face (state API, runtime, config, CLI, dev stack).

``from orchestrator import Orchestrator`` works as the seed writes it, and
``async with orchestrator.connect(config=...) as state:`` is the one way in from Python
(``orchestrator.app.connect``). Both are imported lazily so ``import orchestrator.config``
or ``import orchestrator.events`` stays free of Kafka and PostgreSQL drivers.
"""

from __future__ import annotations

from typing import Any

_RUNTIME = frozenset(
    {"Orchestrator", "Pipeline", "TaskContext", "PipelineResult", "PipelineFailed", "TaskError"}
)


_CONNECT = frozenset({"connect", "Connection", "NotConnected", "ServerUnreachable"})


def __getattr__(name: str) -> Any:
    if name in _RUNTIME:
        from orchestrator import runtime

        return getattr(runtime, name)
    if name in _CONNECT:
        import importlib

        return getattr(importlib.import_module("orchestrator.app.connect"), name)
    raise AttributeError(f"module 'orchestrator' has no attribute {name!r}")


__all__ = sorted(_RUNTIME | _CONNECT)
