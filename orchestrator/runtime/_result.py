"""How an execution ended (``ExecutionRun.run``'s result), apart from the task loop."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True, kw_only=True)
class PipelineResult:
    """How an execution ended: its id, status, every task's output, and ``result``
    (the only sink task's output, or ``{sink: output}`` for several)."""

    execution_id: str
    pipeline_id: str
    status: str
    result: Any
    outputs: Mapping[str, Any]
    attempts: Mapping[str, int]
    resumed: bool = False
    reused_tasks: tuple[str, ...] = ()
    node_id: str = ""
