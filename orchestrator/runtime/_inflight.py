"""The task loop's one append in flight: a task's completion (with the starts it made
ready) decided and handed to Kafka, the next task's body running while it is
acknowledged.

Why: in a chain each task used to wait for the round trip of the append that started
it before its body ran; now the body overlaps it. What stays as it was:

- every other command of the execution (the next completion, a ``checkpoint.save`` in
  the body, a ``FailTask``) is decided only after this append was acknowledged and
  adopted: the writer's lock is held until then (``commands.submit_many``);
- a run returns (``Complete`` acknowledged) only after every append before it;
- if the append fails, the run fails with its error (the task loop watches it) and the
  writer re-takes ownership before anything else is written, as after any failed
  append. Every later :meth:`InFlight.settle` raises that error again, whoever settled
  it first, so nothing the run built over the state the append led to (a completion
  of a task it started, the next append) is decided after it; only
  :meth:`InFlight.abandon`, on the run's way out, ends that;
- if a task gave up (the run is failing already) the run's own error wins:
  :meth:`InFlight.abandon` hands back the completions the failed append held, and the
  run records only those the state it re-took allows: what the failed append would
  have started is not assumed to have started.

What a crash in the window means: the body may have run before the append that
started it was durable. On resume the task is then pending, not running, so it runs
again (as after a crash anywhere in its body) as an attempt that the interrupted-attempt
limit does not count; the completions in that append are not durable either, so those
tasks run again too, as they would after a crash before their acknowledgement.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from orchestrator.commands import Command, CompleteTask, ExecutionWriter, submit_many
from orchestrator.events import ExecutionState, Position
from orchestrator.state import StateRuntime

log = logging.getLogger(__name__)


@dataclass(eq=False)
class InFlight:
    """At most one append of a run in flight (see the module docstring)."""

    writer: ExecutionWriter
    runtime: StateRuntime
    task: asyncio.Task[list[Position]] | None = field(default=None, init=False)
    _completions: tuple[CompleteTask, ...] = field(default=(), init=False)
    _failed: Exception | None = field(default=None, init=False)
    """The error of this run's append that failed, raised by every settle until abandon."""
    _lost: tuple[CompleteTask, ...] = field(default=(), init=False)
    """The completions that failed append held."""

    @property
    def completed(self) -> frozenset[str]:
        """Tasks whose ``CompleteTask`` is in the append in flight."""
        return frozenset(c.task_id for c in self._completions)

    async def submit(self, commands: Sequence[Command]) -> ExecutionState:
        """Decide ``commands`` (after the previous append settled) and send them; the
        state they lead to once acknowledged."""
        await self.settle()
        state, self.task = await submit_many(self.writer, commands)
        self.task.add_done_callback(_retrieved)  # a run cancelled before settling it
        self._completions = tuple(c for c in commands if isinstance(c, CompleteTask))
        return state

    def waiting(self) -> list[asyncio.Task[list[Position]]]:
        """The append in flight, to wait on beside the running tasks (or nothing)."""
        return [] if self.task is None else [self.task]

    async def settle_if_done(self) -> None:
        """:meth:`settle` an append already acknowledged (or failed); else nothing."""
        if self._failed is not None or (self.task is not None and self.task.done()):
            await self.settle()

    async def settle(self) -> None:
        """Wait for the append in flight, if any: its error is raised here (and by every
        later call, until :meth:`abandon`)."""
        if self._failed is not None:
            raise self._failed
        task, held = self.task, self._completions
        if task is None:
            return
        try:
            positions = await asyncio.shield(task)
        except BaseException as exc:
            if task.done():  # its own failure (not our caller's cancellation)
                self._forget(task)
                if isinstance(exc, Exception):
                    self._failed, self._lost = exc, held
            raise
        self._forget(task)
        self.runtime.record(positions[-1:])

    def _forget(self, task: asyncio.Task[list[Position]]) -> None:
        """Drop ``task`` once settled, unless a newer append took its place meanwhile
        (several coroutines may settle one append; the first to wake may submit the
        next before the others wake)."""
        if self.task is task:
            self.task, self._completions = None, ()

    async def abandon(self, cause: BaseException | None = None) -> tuple[CompleteTask, ...] | None:
        """On the way out of a failed run (``cause``): wait for the append (its outcome is
        what the writer adopts, or resyncs from) without raising its error: the run's own
        error is the one that propagates, and this one, unless it is ``cause``, is logged,
        never dropped silently.

        ``None`` if no append failed; else the completions the failed append held. Its
        outcome is unknown (it may still be in the log): the caller decides them again
        over the state the writer re-takes, never over the one the append led to."""
        try:
            await self.settle()
        except Exception as exc:
            lost, self._failed, self._lost = self._lost, None, ()
            if exc is not cause:
                log.warning(
                    "execution %s: the append in flight failed too (%s: %s); what it held "
                    "is decided again over the state in the log",
                    self.writer.execution_id,
                    type(exc).__name__,
                    exc,
                )
            return lost
        return None


def _retrieved(task: asyncio.Task[list[Position]]) -> None:
    """Mark the append's error as seen (whoever settles it raises it; nobody may)."""
    if not task.cancelled():
        task.exception()
