"""What the write side records: one ``state_operations`` sample per command, by type."""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from orchestrator.events import record_checkpoints_saved, record_operation

_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")
_T = TypeVar("_T")


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
        record_operation(component, name, seconds, outcome, count)
    saved = counts.get("save_checkpoint", 0)
    if ok and saved:
        record_checkpoints_saved(saved)


def counted(
    fn: Callable[..., Awaitable[_T]],
) -> Callable[..., Awaitable[_T]]:
    """Decorate ``execute_together(items, **ids)``: its commands are counted and timed."""

    @functools.wraps(fn)
    async def counting(items: Sequence[tuple[Any, Sequence[object]]], **ids: Any) -> _T:
        started = time.perf_counter()
        batches = [commands for _, commands in items]
        try:
            result = await fn(items, **ids)
        except BaseException:
            record_commands(batches, time.perf_counter() - started, ok=False)
            raise
        record_commands(batches, time.perf_counter() - started, ok=True)
        return result

    return counting
