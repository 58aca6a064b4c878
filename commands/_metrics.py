"""What the write side records: one ``state_operations`` sample per command, by type."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence

from orchestrator.events import metrics

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


@functools.cache
def operation_name(type_name: str) -> str:
    """``SaveCheckpoint`` → ``save_checkpoint`` (a bounded label: one per command type)."""
    return _CAMEL.sub("_", type_name).lower()


def record_commands(
    batches: Sequence[Sequence[object]], seconds: float, *, ok: bool, component: str = "writer"
) -> None:
    """Each command of one append (``seconds``: the whole append, decide to acknowledged)."""
    saved = 0
    for commands in batches:
        for command in commands:
            name = operation_name(type(command).__name__)
            metrics.record_operation(component, name, seconds, "ok" if ok else "error")
            saved += name == "save_checkpoint"
    if ok and saved:
        metrics.record_checkpoints_saved(saved)
