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
    """The commands of one append, counted by type (``seconds``: the whole append, from
    decide to acknowledged; one duration sample per type in it)."""
    counts: dict[str, int] = {}
    for commands in batches:
        for command in commands:
            name = operation_name(type(command).__name__)
            counts[name] = counts.get(name, 0) + 1
    outcome = "ok" if ok else "error"
    for name, count in counts.items():
        metrics.record_operation(component, name, seconds, outcome, count)
    saved = counts.get("save_checkpoint", 0)
    if ok and saved:
        metrics.record_checkpoints_saved(saved)
