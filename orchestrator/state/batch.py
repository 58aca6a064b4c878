"""``BatchStateManager``: many task-state updates, validated together, sent together.

As the seed uses it::

    batch_manager = BatchStateManager(batch_size=100, flush_interval=1.0)
    async with batch_manager.batch() as batch:
        for task_id, result in results.items():
            await batch.update_task_state(task_id=task_id, status="completed", outputs=result)

Each update is checked at once against the running state of its execution (the
execution's state plus the updates buffered before it), so an invalid one raises
``InvalidTransition`` right there; leaving the block with an error discards the
buffer: nothing of it is written. A flush decides the buffered commands again under
the writers' locks, all or nothing, and sends them as one produce batch
(``commands.together.execute_together``). ``batch_size`` and ``flush_interval`` bound the
buffer: reaching either flushes what is buffered so far, so a batch larger than
``batch_size`` (or open longer than ``flush_interval``) is all-or-nothing per flush.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from orchestrator.commands import (
    Command,
    CompleteTask,
    ExecutionWriter,
    FailTask,
    ScheduleRetry,
    ScheduleTask,
    SkipTask,
    StartTask,
    evolve,
    execute_together,
)
from orchestrator.events import ExecutionDetails, ExecutionState, Position
from orchestrator.state.running_task import current_task
from orchestrator.state.services import StateRuntime, current_runtime

log = logging.getLogger(__name__)

STATUSES = ("scheduled", "running", "completed", "failed", "retrying", "skipped")


def task_command(task_id: str, status: str, **fields: Any) -> Command:
    """The command that moves a task to ``status``."""
    get = fields.get
    if status == "scheduled":
        return ScheduleTask(task_id=task_id)
    if status == "running":
        return StartTask(task_id=task_id, inputs=get("inputs"), node_id=get("node_id"))
    if status == "completed":
        details = get("details")
        if isinstance(details, dict):
            details = ExecutionDetails(**details)
        return CompleteTask(
            task_id=task_id,
            outputs=get("outputs"),
            metadata=get("metadata"),
            details=details or ExecutionDetails(),
        )
    if status == "failed":
        return FailTask(
            task_id=task_id, error=get("error") or "failed", retryable=get("retryable", True)
        )
    if status == "retrying":
        return ScheduleRetry(task_id=task_id, delay_seconds=get("delay_seconds") or 0.0)
    if status == "skipped":
        return SkipTask(task_id=task_id, reason=get("reason"))
    raise ValueError(f"task status {status!r} cannot be set; use one of {', '.join(STATUSES)}")


class StateBatch:
    """The buffer of one ``batch()`` block."""

    def __init__(self, manager: BatchStateManager, runtime: StateRuntime) -> None:
        self._manager = manager
        self._runtime = runtime
        self._buffer: list[tuple[ExecutionWriter, Command]] = []
        self._running: dict[str, ExecutionState | None] = {}
        self._lock = asyncio.Lock()
        self._failed: BaseException | None = None
        self.positions: list[Position] = []

    def _writer(self, execution_id: str | None) -> ExecutionWriter:
        task = current_task()
        if execution_id is None:
            if task is None:
                raise ValueError("update_task_state outside a task needs execution_id=...")
            return task.writer
        if task is not None and task.execution_id == execution_id:
            return task.writer
        return self._runtime.writer_for(execution_id)

    async def update_task_state(
        self,
        task_id: str,
        status: str,
        outputs: Any = None,
        *,
        execution_id: str | None = None,
        **fields: Any,
    ) -> None:
        """Buffer a task update (``inputs``, ``metadata``, ``details``, ``error``,
        ``retryable``, ``delay_seconds``, ``reason`` as the status needs); raises
        ``InvalidTransition`` at once if the running state does not allow it."""
        if self._failed is not None:
            raise self._failed
        writer = self._writer(execution_id)
        command = task_command(task_id, status, outputs=outputs, **fields)
        # Encoded now (claim-checked if large), so checking it needs no blob I/O.
        command = await writer.encode(command)
        async with self._lock:
            key = writer.execution_id
            state = self._running[key] if key in self._running else writer.state
            self._running[key] = evolve(state, [command])
            self._buffer.append((writer, command))
            full = len(self._buffer) >= self._manager.batch_size
        if full:
            await self.flush()

    async def flush(self) -> list[Position]:
        """Send what is buffered as one produce batch; the positions (one per update)."""
        async with self._lock:
            buffer, self._buffer = self._buffer, []
            self._running.clear()
            if not buffer:
                return []
            grouped: dict[int, tuple[ExecutionWriter, list[Command]]] = {}
            for writer, command in buffer:
                grouped.setdefault(id(writer), (writer, []))[1].append(command)
            items = list(grouped.values())
            results = await execute_together(items)
            positions = [p for batch in results for p in batch]
            self._runtime.record(positions)
            self.positions.extend(positions)
            return positions

    async def _flush_periodically(self) -> None:
        while True:
            await asyncio.sleep(self._manager.flush_interval)
            try:
                await self.flush()
            except Exception as exc:  # surfaced by the next update or at the block's end
                log.warning("periodic flush of a state batch failed: %s", exc)
                self._failed = exc
                return


class BatchStateManager:
    """Batches task-state updates; see the module docstring for the guarantees."""

    def __init__(
        self,
        batch_size: int = 100,
        flush_interval: float = 1.0,
        *,
        runtime: StateRuntime | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        if not flush_interval > 0:
            raise ValueError("flush_interval must be > 0 seconds")
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self._runtime = runtime

    @contextlib.asynccontextmanager
    async def batch(self) -> AsyncIterator[StateBatch]:
        """A buffer flushed when full, every ``flush_interval`` and at the end of the
        block; an error in the block discards what is not flushed yet."""
        runtime = self._runtime or current_runtime("BatchStateManager")
        batch = StateBatch(self, runtime)
        ticker = asyncio.create_task(batch._flush_periodically())
        try:
            yield batch
        except BaseException:
            batch._buffer.clear()
            raise
        finally:
            async with batch._lock:  # never cancel a flush halfway through its append
                ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await ticker
        if batch._failed is not None:
            raise batch._failed
        await batch.flush()
