"""A task that failed for good, carried to the end of its run.

Why apart: which failure ends a run must not depend on the order in which the task
loop notices what ended in one round. A task that gave up has its final ``FailTask``
in the log already, so the run ends as that task's failure says (``Fail`` written,
``PipelineFailed`` raised), whatever ended with it: the append in flight failing too,
a sibling failing another way.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any

from orchestrator.events import error_fields


@error_fields("{task_id}: {error}")
class GaveUp(Exception):
    """Internal: a task failed for good (its FailTask is already written)."""

    task_id: str
    error: str
    retryable: bool


def raise_gave_up(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Raise the ``GaveUp`` of the first of ``tasks`` (ended ones) that gave up, if any."""
    for task in tasks:
        if task.done() and not task.cancelled() and isinstance(task.exception(), GaveUp):
            task.result()
