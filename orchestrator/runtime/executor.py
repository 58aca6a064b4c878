"""Driving one execution to its end through its writer: the task loop.

Every state change is a command on the execution's ``ExecutionWriter`` (fenced by its
lease), so the log says exactly what happened and a crash at any point leaves a state
another node can continue from:

* lifecycle: ``StartValidation`` → (pipeline's validator) → ``SucceedValidation`` or
  ``FailValidation``; a failed or paused execution being resumed gets ``Resume``;
* each task whose dependencies are done: ``ScheduleTask`` → ``StartTask(attempt n)`` →
  the code runs inside ``checkpoint.task_scope`` (so ``checkpoint.save`` works) →
  ``CompleteTask`` with outputs and execution details, or ``FailTask`` then, while the
  retry policy allows, ``ScheduleRetry(delay)`` and ``StartTask(attempt n+1)`` with the
  task's last checkpoint in ``context.last_checkpoint`` (``retry_from_checkpoint``);
* automatic checkpoints as the :class:`CheckpointPolicy` says;
* ``Complete`` with the outputs of the sink tasks, or ``Fail``.

A task transition is one append: a task's ``CompleteTask`` goes out with the
``ScheduleTask`` + ``StartTask`` of the tasks it made ready (or with the execution's
``Complete``), so a chain costs one Kafka round trip per task, not two; and the tasks
it starts run while it is acknowledged (``_inflight``: every later command of the
execution still waits for that acknowledgement).

Independent tasks run concurrently. When a task fails for good, running siblings are
cancelled and recorded as failed (retryable) before the execution fails, so a later
resume re-runs them; that failure ends the run even if the append in flight failed
with it (``_gave_up``, ``_inflight``). A task found ``running`` when an execution is
resumed was interrupted by a crash: it runs again as the next attempt; one interrupted
``max_attempts`` times is failed instead of crash-looping its node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from orchestrator.commands import (
    Command,
    Complete,
    CompleteTask,
    ExecutionNotOwned,
    ExecutionWriter,
    Fail,
    FailTask,
    FailValidation,
    LeaseLost,
    RestoreCheckpoint,
    Resume,
    ScheduleRetry,
    ScheduleTask,
    StartTask,
    StartValidation,
    SucceedValidation,
)
from orchestrator.events import (
    CheckpointRef,
    ExecutionDetails,
    ExecutionState,
    record_recovery,
)
from orchestrator.runtime._checkpoints import Checkpoints, is_task_state, plain
from orchestrator.runtime._gave_up import GaveUp, raise_gave_up
from orchestrator.runtime._inflight import InFlight
from orchestrator.runtime._result import PipelineResult
from orchestrator.runtime._resume import DONE
from orchestrator.runtime.context import TaskContext, running
from orchestrator.runtime.errors import PipelineFailed
from orchestrator.runtime.pipeline import Pipeline, TaskDefinition
from orchestrator.runtime.policy import CheckpointPolicy, RetryPolicy, is_retryable
from orchestrator.state import RestoredCheckpoint, StateRuntime, task_scope

log = logging.getLogger(__name__)


@dataclass(eq=False, kw_only=True)
class ExecutionRun:
    """One run of one execution on this node (create or resume), until it ends."""

    pipeline: Pipeline
    writer: ExecutionWriter
    runtime: StateRuntime
    retry: RetryPolicy
    checkpoints: CheckpointPolicy
    outputs: dict[str, Any] = field(default_factory=dict)
    from_checkpoint: RestoredCheckpoint | None = None
    budget_base: dict[str, int] = field(default_factory=dict)
    resumed: bool = False
    _contexts: dict[str, TaskContext] = field(default_factory=dict)
    _last_auto: float | None = None
    _opened_context: dict[str, Any] | None = None
    _saved: Checkpoints | None = None
    _inflight: InFlight | None = None
    _pending: list[CompleteTask] = field(default_factory=list)
    """Completions the task loop appends at once, with the starts they make ready."""

    @property
    def saved(self) -> Checkpoints:
        if self._saved is None:
            self._saved = Checkpoints(
                self.writer, self.runtime, self._do, self.from_checkpoint, self._contexts
            )
        return self._saved

    @property
    def inflight(self) -> InFlight:
        if self._inflight is None:
            self._inflight = InFlight(self.writer, self.runtime)
        return self._inflight

    @property
    def execution_id(self) -> str:
        return self.writer.execution_id

    @property
    def state(self) -> ExecutionState:
        return self.writer.state

    async def _do(self, command: Command) -> None:
        await self.inflight.settle()
        position = await self.writer.execute(command)
        self.runtime.record([position])

    async def _do_many(self, commands: Sequence[Command]) -> None:
        """Several commands in one append (all or nothing)."""
        await self.inflight.settle()
        positions = await self.writer.execute_many(commands)
        self.runtime.record(positions[-1:])

    def _take_pending(self) -> list[CompleteTask]:
        pending, self._pending = self._pending, []
        return pending

    # --- the whole run ----------------------------------------------------------------

    async def run(self) -> PipelineResult:
        reused = tuple(t for t, ts in self.state.tasks.items() if ts.status in DONE)
        # Input data and configuration opened once (claim-checked or sealed in the state).
        self._opened_context = await self.runtime.open_context(
            self.execution_id, self.state.context
        )
        await self._lifecycle()
        interval = self.checkpoints.periodic_interval
        timer = asyncio.create_task(self.saved.periodic(interval)) if interval else None
        try:
            await self._run_tasks(timer)
        except GaveUp as gave_up:
            await self._do(Fail(error=f"task {gave_up.task_id} failed: {gave_up.error}"))
            log.warning(
                "execution %s failed: task %s: %s",
                self.execution_id,
                gave_up.task_id,
                gave_up.error,
            )
            raise PipelineFailed(
                self.execution_id,
                self.pipeline.pipeline_id,
                gave_up.task_id,
                gave_up.error,
                retryable=gave_up.retryable,
            ) from gave_up.__cause__
        finally:
            if timer is not None:
                timer.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await timer
        sinks = self.pipeline.sinks()
        result = self.outputs[sinks[0]] if len(sinks) == 1 else {s: self.outputs[s] for s in sinks}
        await self._do_many([*self._take_pending(), Complete(outputs=result)])
        log.info("execution %s of %s completed", self.execution_id, self.pipeline.pipeline_id)
        return PipelineResult(
            execution_id=self.execution_id,
            pipeline_id=self.pipeline.pipeline_id,
            status=self.state.status,
            result=result,
            outputs=dict(self.outputs),
            attempts={t: ts.attempts for t, ts in self.state.tasks.items()},
            resumed=self.resumed,
            reused_tasks=reused,
            node_id=self.writer.node_id,
        )

    async def _lifecycle(self) -> None:
        status = self.state.status
        if status == "initialized":
            await self._do(StartValidation())
            status = "validating"
        if status == "validating":
            try:
                await self.pipeline.validate(self._opened_context or self.state.context)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                await self._do(FailValidation(error=error))
                raise PipelineFailed(
                    self.execution_id, self.pipeline.pipeline_id, None, error, retryable=False
                ) from exc
            await self._do(SucceedValidation())
            return
        restored = self.from_checkpoint.id if self.from_checkpoint is not None else None
        if status in ("failed", "paused"):
            reason = "recover" if status == "failed" else "resume"
            await self._do(
                Resume(from_checkpoint=restored, reason=f"{reason} on {self.writer.node_id}")
            )
        elif restored is not None:
            await self._do(RestoreCheckpoint(checkpoint_id=restored))

    async def _run_tasks(self, timer: asyncio.Task[None] | None) -> None:
        running: dict[str, asyncio.Task[Any]] = {}
        # A task's dependencies as a set: ``needs <= done`` below is one C-level check
        # per task where ``all(dep in done ...)`` made a generator per task per turn (at
        # 1,000 tasks, most of the loop's time).
        needs = {d.task_id: frozenset(d.depends_on) for d in self.pipeline.tasks}
        try:
            while True:
                inflight = self.inflight
                await inflight.settle_if_done()  # the state is then current
                tasks = self.state.tasks
                done = {t for t, ts in tasks.items() if ts.status in DONE}
                done.update(c.task_id for c in self._pending)
                done.update(inflight.completed)
                if len(done) == len(tasks):
                    return  # run() appends the last completions with Complete
                ready = [
                    d
                    for d in self.pipeline.tasks
                    if d.task_id not in done
                    and d.task_id not in running
                    and needs[d.task_id] <= done
                ]
                merged = [d for d in ready if self._pending and self._starts_plainly(d)]
                attempts: dict[str, int] = {}
                if self._pending:  # completions, with the starts they made ready: one append
                    starts = [c for d in merged for c in self._start_commands(d)]
                    after = await inflight.submit([*self._take_pending(), *starts])
                    attempts = {d.task_id: after.tasks[d.task_id].attempts for d in merged}
                for definition in ready:
                    tid = definition.task_id
                    running[tid] = asyncio.create_task(
                        self._run_task(definition, prestarted=attempts.get(tid)),
                        name=f"{self.execution_id}/{tid}",
                    )
                if not running:
                    if inflight.task is not None:
                        await inflight.settle()  # what it completes may make tasks ready
                        continue
                    raise RuntimeError(
                        f"execution {self.execution_id}: no task can run: {dict(tasks)}"
                    )
                watch: set[asyncio.Future[Any]] = {*running.values(), *inflight.waiting()}
                if timer is not None:
                    watch.add(timer)
                finished, _ = await asyncio.wait(watch, return_when=asyncio.FIRST_COMPLETED)
                raise_gave_up(t for t in running.values() if t in finished)  # it decides first
                await inflight.settle_if_done()  # raises the append's error, if any
                if timer is not None and timer in finished:
                    timer.result()  # raises what stopped the timer, if anything
                    timer = None
                failed: asyncio.Task[Any] | None = None
                for tid, task in list(running.items()):
                    if task in finished:
                        del running[tid]
                        if failed is None and (task.cancelled() or task.exception()):
                            failed = task
                if failed is not None:
                    failed.result()  # raises the task's failure
        except BaseException as exc:
            await self._stop_siblings(running, exc)
            raise

    def _starts_plainly(self, definition: TaskDefinition) -> bool:
        """A pending task with no checkpoint to hand it: its start needs no read."""
        tid = definition.task_id
        given = self.from_checkpoint
        return (
            self.state.tasks[tid].status == "pending"
            and (given is None or given.task_id != tid)
            and not any(r.task_id == tid for r in self.state.checkpoints)
        )

    def _start_commands(self, definition: TaskDefinition) -> list[Command]:
        tid = definition.task_id
        inputs = {d: self.outputs[d] for d in definition.depends_on}
        start = StartTask(task_id=tid, inputs=inputs or None, node_id=self.writer.node_id)
        return [ScheduleTask(task_id=tid), start]

    async def _stop_siblings(
        self, running: dict[str, asyncio.Task[Any]], cause: BaseException
    ) -> None:
        for task in running.values():
            task.cancel()
        await asyncio.gather(*running.values(), return_exceptions=True)
        lost = await self.inflight.abandon(cause)
        if not isinstance(cause, GaveUp):
            return  # cancelled or fenced: leave the tasks running, the next owner resumes them
        completions = [*(lost or ()), *self._take_pending()]
        if lost is not None:  # the append failed: which of its starts landed is unknown
            await self.writer.execute_many([])  # nothing written; the writer re-takes the state
            completions = [
                c for c in completions if self.state.tasks[c.task_id].status == "running"
            ]
        if completions:  # siblings that completed are recorded so, not run again
            await self._do_many(completions)
        for tid in running:
            if self.state.tasks[tid].status == "running":
                await self._do(
                    FailTask(
                        task_id=tid, error=f"cancelled: task {cause.task_id} failed", retryable=True
                    )
                )

    # --- one task -----------------------------------------------------------------------

    async def _run_task(self, definition: TaskDefinition, *, prestarted: int | None = None) -> Any:
        """Run one task to its end; ``prestarted``: the attempt whose ``StartTask`` the
        task loop already sent. Its ``CompleteTask`` is left to the task loop
        (``_pending``) unless an automatic checkpoint follows it."""
        tid = definition.task_id
        base = self.budget_base.get(tid, 0)
        loop = asyncio.get_running_loop()
        first = True
        retrying = False  # this attempt is a retry from checkpoint (a recovery attempt)
        while True:
            inputs = {d: self.outputs[d] for d in definition.depends_on}
            interrupted, ref, data = False, None, None
            attempt = prestarted
            if attempt is None:
                interrupted, ref, data = await self._begin(tid, inputs, first=first, base=base)
                attempt = self.state.tasks[tid].attempts
            prestarted, first = None, False
            context = self._context(
                tid, attempt, inputs, ref, data, resumed=interrupted or attempt > 1
            )
            if ref is not None:
                log.info(
                    "execution %s: task %s attempt %s resumes from checkpoint %s",
                    self.execution_id,
                    tid,
                    attempt,
                    ref.name,
                )
            self._contexts[tid] = context
            started = loop.time()
            try:
                with task_scope(self.writer, tid), running(context):
                    output = await definition.run(context)
            except (LeaseLost, ExecutionNotOwned):
                raise
            except Exception as exc:
                retryable = is_retryable(exc)
                error = f"{type(exc).__name__}: {exc}"
                await self._do(
                    FailTask(task_id=tid, error=error, retryable=retryable, attempt=attempt)
                )
                if retrying:
                    record_recovery("task_retry", "failed")
                used = attempt - base
                if not self.retry.should_retry(used, retryable):
                    raise GaveUp(tid, error, retryable) from exc
                delay = self.retry.delay(used)
                log.info(
                    "execution %s: task %s attempt %s failed (%s); retry in %.2fs",
                    self.execution_id,
                    tid,
                    attempt,
                    error,
                    delay,
                )
                await self._do(ScheduleRetry(task_id=tid, delay_seconds=round(delay, 3)))
                await asyncio.sleep(delay)
                retrying = True
                continue
            finally:
                self._contexts.pop(tid, None)
            if retrying:
                record_recovery("task_retry", "succeeded")
            output = plain(output)
            details = ExecutionDetails(
                duration=round(loop.time() - started, 3),
                memory_used=context.memory_used,
                model_calls=context.model_calls or None,
                tokens_used=context.tokens_used or None,
            )
            complete = CompleteTask(task_id=tid, outputs=output, details=details)
            self.outputs[tid] = output
            now = loop.time()
            if self.checkpoints.after_task(tid, now, self._last_auto):
                await self._do(complete)
                self._last_auto = now
                await self.saved.save_auto(self.checkpoints.strategy, tid)
            else:
                self._pending.append(complete)
            return output

    async def _begin(
        self, tid: str, inputs: dict[str, Any], *, first: bool, base: int
    ) -> tuple[bool, CheckpointRef | None, Any]:
        """Start an attempt (with the task's ScheduleTask if pending: one append); whether
        it follows an interruption, and the checkpoint it resumes from."""
        ts = self.state.tasks[tid]
        schedule: list[Command] = [ScheduleTask(task_id=tid)] if ts.status == "pending" else []
        if first and ts.status == "running" and ts.attempts - base >= self.retry.max_attempts:
            limit = self.retry.max_attempts
            error = f"interrupted in attempt {ts.attempts} of {limit} (node crash?)"
            await self._do(FailTask(task_id=tid, error=error, retryable=False))
            raise GaveUp(tid, error, retryable=False)
        ref, data = await self.saved.last(tid)
        start = StartTask(task_id=tid, inputs=inputs or None, node_id=self.writer.node_id)
        await self._do_many([*schedule, start])
        return first and ts.status == "running", ref, data

    def _context(
        self,
        tid: str,
        attempt: int,
        inputs: dict[str, Any],
        ref: CheckpointRef | None,
        data: Any,
        *,
        resumed: bool,
    ) -> TaskContext:
        ctx = self._opened_context or self.state.context
        return TaskContext(
            execution_id=self.execution_id,
            pipeline_id=self.pipeline.pipeline_id,
            task_id=tid,
            attempt=attempt,
            node_id=self.writer.node_id,
            inputs=inputs,
            input_data=ctx.get("input_data"),
            configuration=ctx.get("configuration"),
            user_id=ctx.get("user_id"),
            last_checkpoint=data,
            last_checkpoint_id=None if ref is None else ref.checkpoint_id,
            last_checkpoint_name=None if ref is None else ref.name,
            resumed=resumed,
            state=dict(data) if is_task_state(ref, data) else {},
        )
