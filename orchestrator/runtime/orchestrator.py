"""``Orchestrator``: runs pipelines, resumes them, and keeps this node in the recovery ring.

As the seed uses it::

    orchestrator = Orchestrator()                      # the process's state runtime
    result = await orchestrator.run_pipeline(pipeline, context={"user_id": "u1", ...})
    result = await orchestrator.resume_pipeline(pipeline_id="research_pipeline",
                                                from_checkpoint=restored_state)
    result = await orchestrator.resume_pipeline(execution_id="exec_12345")

``start()`` (or ``async with``) adds what makes crashes survivable without anyone
calling ``resume_pipeline``: the node heartbeat and the recovery supervisor (see
``orchestrator.runtime.supervisor``). Without ``start()`` the orchestrator still runs
and resumes pipelines when asked.

Resuming takes the execution over (its lease, then ``ExecutionOwnershipTaken``, then the
state the read model holds: design §3), keeps the outputs of completed tasks, and runs
the rest; an interrupted task runs again as its next attempt with its last checkpoint.
It raises ``RecoveryError(execution_id, reason)`` when that is impossible: unknown
execution, already completed or cancelled, failed for good (non-retryable), pipeline
code not registered on this node, or still owned by a live node.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from orchestrator.commands import (
    TRANSIENT_ERRORS,
    CreateExecution,
    ExecutionNotFound,
    ExecutionNotOwned,
    ExecutionWriter,
    LeaseLost,
    LeaseStore,
    ReadModelTimeout,
)
from orchestrator.events import (
    ExecutionState,
    LogError,
    Resource,
    record_recovery,
    start_recovery,
)
from orchestrator.runtime._result import PipelineResult
from orchestrator.runtime._resume import (
    DONE,
    check_resumable,
    completed_outputs,
    resume_target,
)
from orchestrator.runtime._schema import ensure_runtime_tables
from orchestrator.runtime.context import split_context
from orchestrator.runtime.errors import PipelineFailed, RecoveryError
from orchestrator.runtime.executor import ExecutionRun
from orchestrator.runtime.health import NodeHeartbeat
from orchestrator.runtime.pipeline import Pipeline, registered_pipeline, registered_pipelines
from orchestrator.runtime.policy import Policies, default_policies
from orchestrator.runtime.supervisor import RecoverySupervisor
from orchestrator.state import NotConfigured, RestoredCheckpoint, StateRuntime, current_runtime

log = logging.getLogger(__name__)

_POSTPONE: tuple[type[BaseException], ...] = (ReadModelTimeout, *TRANSIENT_ERRORS)
_POSTPONE_OR_KAFKA: tuple[type[BaseException], ...] = (*_POSTPONE, LogError)


class Orchestrator(Resource):
    """Runs and resumes pipelines on this node (see the module docstring).

    ``discover``: also run pipelines this process defined but did not register here
    (what ``Orchestrator()`` in the seed's examples relies on); ``supervise``: campaign
    for the recovery supervisor's leadership once started.
    """

    def __init__(
        self,
        runtime: StateRuntime | None = None,
        *,
        pipelines: Iterable[Pipeline] = (),
        policies: Policies | None = None,
        supervise: bool = True,
        discover: bool = True,
    ) -> None:
        self._runtime = runtime
        self.discover = discover
        self._pipelines: dict[str, Pipeline] = {p.pipeline_id: p for p in pipelines}
        self._policies = policies
        self.supervise = supervise
        self._active: dict[str, asyncio.Task[Any]] = {}
        self._recovering: set[str] = set()
        self._background: set[asyncio.Task[Any]] = set()
        self._refused: set[str] = set()
        self._heartbeat: NodeHeartbeat | None = None
        self.supervisor: RecoverySupervisor | None = None
        self.recoveries: list[tuple[str, str, str]] = []
        """``(execution_id, reason, outcome)`` of every background recovery on this node."""

    # --- wiring ------------------------------------------------------------------------

    @property
    def runtime(self) -> StateRuntime:
        return self._runtime or current_runtime("Orchestrator")

    @property
    def policies(self) -> Policies:
        """Given ones, else the runtime's (the app's configuration), else the seed's."""
        if self._policies is not None:
            return self._policies
        try:
            return default_policies(self.runtime)
        except NotConfigured:
            return default_policies()

    @property
    def node_id(self) -> str:
        return self.runtime.node_id

    def register(self, *pipelines: Pipeline) -> None:
        """Make pipelines resumable here (``run_pipeline`` registers its pipeline too)."""
        for pipeline in pipelines:
            self._pipelines[pipeline.pipeline_id] = pipeline

    def pipeline(self, pipeline_id: str) -> Pipeline | None:
        """The code of ``pipeline_id`` on this node: registered, else defined in-process."""
        found = self._pipelines.get(pipeline_id)
        if found is None and self.discover:
            found = registered_pipeline(pipeline_id)
        return found

    def pipeline_ids(self) -> list[str]:
        """What this node can run and resume (advertised to the supervisor)."""
        ids = set(self._pipelines)
        if self.discover:
            ids |= {p.pipeline_id for p in registered_pipelines()}
        return sorted(ids)

    @property
    def running(self) -> list[str]:
        """Executions this node is driving now."""
        return list(self._active)

    # --- running -----------------------------------------------------------------------

    async def run_pipeline(
        self,
        pipeline: Pipeline,
        context: Mapping[str, Any] | None = None,
        *,
        execution_id: str | None = None,
    ) -> PipelineResult:
        """Create an execution of ``pipeline`` and run it to its end here.

        Raises ``PipelineFailed`` if it ends failed (resumable with ``resume_pipeline``
        when ``retryable``), ``LeaseLost`` if another node took it over meanwhile.
        """
        writer = await self._create(pipeline, context, execution_id)
        return await self._drive(pipeline, writer, self._run_of(pipeline, writer))

    async def submit(
        self,
        pipeline: Pipeline,
        context: Mapping[str, Any] | None = None,
        *,
        execution_id: str | None = None,
    ) -> str:
        """Create an execution and run it in the background; its id once created."""
        writer = await self._create(pipeline, context, execution_id)
        run = self._run_of(pipeline, writer)
        self._spawn(self._drive(pipeline, writer, run), writer.execution_id, reason="submitted")
        return writer.execution_id

    async def wait(self, execution_id: str) -> PipelineResult:
        """The result of an execution this node runs in the background."""
        task = self._active.get(execution_id)
        if task is None:
            raise KeyError(f"execution {execution_id} is not running on {self.node_id}")
        result: PipelineResult = await asyncio.shield(task)
        return result

    def _run_of(self, pipeline: Pipeline, writer: ExecutionWriter, **resumed: Any) -> ExecutionRun:
        """A run of ``pipeline`` through ``writer`` under this node's retry and checkpoint
        policies; ``resumed``: what a resumed run carries over (outputs, budget...)."""
        return ExecutionRun(
            pipeline=pipeline,
            writer=writer,
            runtime=self.runtime,
            retry=self.policies.retry,
            checkpoints=self.policies.checkpoints,
            **resumed,
        )

    async def _create(
        self, pipeline: Pipeline, context: Mapping[str, Any] | None, execution_id: str | None
    ) -> ExecutionWriter:
        self.register(pipeline)
        rt = self.runtime
        eid = execution_id or f"exec_{uuid.uuid4().hex[:12]}"
        command = CreateExecution(
            execution_id=eid,
            pipeline_id=pipeline.pipeline_id,
            tasks=pipeline.specs(),
            **split_context(context),
        )
        writer = await rt.create_execution(command)
        log.info("execution %s of %s created on %s", eid, pipeline.pipeline_id, rt.node_id)
        return writer

    async def _drive(
        self, pipeline: Pipeline, writer: ExecutionWriter, run: ExecutionRun
    ) -> PipelineResult:
        eid = writer.execution_id
        current = asyncio.current_task()
        if current is not None:
            self._active.setdefault(eid, current)
        try:
            return await run.run()
        finally:
            if self._active.get(eid) is current:
                del self._active[eid]
            await self._release(eid)

    async def _release(self, eid: str) -> None:
        """Release the execution's lease without hiding the run's outcome: the outcome
        is on the log already, so a failed release (the database away) is logged, and
        the lease then expires on its own (or is taken over once this owner is gone)."""
        try:
            await self.runtime.release_execution(eid)
        except Exception as exc:
            log.warning(
                "execution %s: releasing its lease failed (%s: %s); it expires on its own",
                eid,
                type(exc).__name__,
                exc,
            )

    # --- resuming ----------------------------------------------------------------------

    async def resume_pipeline(
        self,
        pipeline_id: str | None = None,
        from_checkpoint: RestoredCheckpoint | None = None,
        *,
        execution_id: str | None = None,
        wait: float | None = None,
    ) -> PipelineResult:
        """Take an execution over and run it to its end (see the module docstring).

        Give ``execution_id``, or ``from_checkpoint`` (what ``checkpoint.restore``
        returned: its task gets the checkpoint's data as ``context.last_checkpoint``).
        ``wait``: seconds to wait for a live owner's lease (default: the lease ttl).
        """
        writer, pipeline, run = await self._take_over(
            pipeline_id, from_checkpoint, execution_id, wait
        )
        return await self._drive(pipeline, writer, run)

    async def _take_over(
        self,
        pipeline_id: str | None,
        from_checkpoint: RestoredCheckpoint | None,
        execution_id: str | None,
        wait: float | None,
    ) -> tuple[ExecutionWriter, Pipeline, ExecutionRun]:
        execution_id = resume_target(pipeline_id, from_checkpoint, execution_id)
        rt = self.runtime
        if execution_id in self._active:
            raise RecoveryError(
                execution_id, f"it is already running on this node ({self.node_id})"
            )
        await rt.wait_for(rt.written())  # read this process's own writes (e.g. a create)
        seen = await rt.read_model.load_execution(execution_id)
        if seen is None:
            raise RecoveryError(execution_id, "no such execution")
        pipeline = self._resumable(execution_id, seen, pipeline_id)
        limit = rt.settings.writer.lease_ttl * 1.2 if wait is None else wait
        try:
            writer = await rt.open_execution(execution_id, wait=limit)
        except ExecutionNotOwned as exc:
            raise RecoveryError(
                execution_id,
                f"it is owned by live node {exc.holder!r} (lease not free after {limit:g}s)",
            ) from exc
        except ExecutionNotFound as exc:
            raise RecoveryError(execution_id, "no such execution") from exc
        try:
            state = writer.state
            self._resumable(execution_id, state, pipeline_id)
            outputs = await completed_outputs(state, rt)
            budget = {}
            if state.status == "failed":  # a manual recovery: a fresh budget for failed tasks
                budget = {t: ts.attempts for t, ts in state.tasks.items() if ts.status != "running"}
            run = self._run_of(
                pipeline,
                writer,
                outputs=outputs,
                from_checkpoint=from_checkpoint,
                budget_base=budget,
                resumed=True,
            )
        except BaseException:
            await rt.release_execution(execution_id)
            raise
        done = [t for t, ts in state.tasks.items() if ts.status in DONE]
        log.info(
            "execution %s resumed on %s at sequence %s (epoch %s); reusing %s",
            execution_id,
            self.node_id,
            state.last_sequence,
            writer.epoch,
            done or "nothing",
        )
        return writer, pipeline, run

    def _resumable(
        self, execution_id: str, state: ExecutionState, pipeline_id: str | None
    ) -> Pipeline:
        code = self.pipeline(state.pipeline_id)
        return check_resumable(execution_id, state, pipeline_id, code, self.node_id)

    @property
    def free_recovery_slots(self) -> int:
        """How many more recovered executions this node takes on now
        (``recovery.max_concurrent_recoveries`` minus those it drives)."""
        return self.policies.recovery.max_concurrent - len(self._recovering)

    async def recover(self, execution_id: str, reason: str) -> None:
        """Resume ``execution_id`` in the background (what the supervisor calls); postponed
        (a later scan asks again) while this node drives its maximum of recoveries."""
        if execution_id in self._active or execution_id in self._refused:
            return
        if self.free_recovery_slots <= 0:
            log.info("recovery of %s (%s) postponed: this node is full", execution_id, reason)
            return
        try:
            writer, pipeline, run = await self._take_over(None, None, execution_id, wait=0.0)
        except LeaseLost as exc:
            # Not final: if the node that took it loses it too, a later scan must get it
            # here, not leave it running under an owner that no longer drives it.
            log.warning("recovery of %s (%s) postponed: %s", execution_id, reason, exc)
            record_recovery(reason, "postponed")
            return
        except RecoveryError as exc:
            # Said once: the supervisor asks again every scan, and only new code (a
            # restart) or another node can change the answer.
            log.warning("recovery of %s (%s) not possible here: %s", execution_id, reason, exc)
            self.recoveries.append((execution_id, reason, f"refused: {exc}"))
            self._refused.add(execution_id)
            record_recovery(reason, "refused")
            return
        except _POSTPONE_OR_KAFKA as exc:  # the next scan tries again
            if isinstance(exc, LogError) and not exc.retriable:
                raise
            log.warning("recovery of %s (%s) postponed: %r", execution_id, reason, exc)
            record_recovery(reason, "postponed")
            return
        self._recovering.add(execution_id)
        self._spawn(self._drive(pipeline, writer, run), execution_id, reason=reason)

    def _spawn(self, work: Any, execution_id: str, *, reason: str) -> None:
        task: asyncio.Task[PipelineResult] = asyncio.create_task(work, name=f"run {execution_id}")
        self._active[execution_id] = task
        self._background.add(task)
        task.add_done_callback(lambda t: self._finished(t, execution_id, reason))

    def _finished(self, task: asyncio.Task[Any], execution_id: str, reason: str) -> None:
        self._background.discard(task)
        if reason != "submitted":
            self._recovering.discard(execution_id)
        if self._active.get(execution_id) is task:
            del self._active[execution_id]
        if task.cancelled():
            outcome = "cancelled"
        elif isinstance(task.exception(), PipelineFailed | LeaseLost | ExecutionNotOwned):
            outcome = f"failed: {task.exception()}"
            log.warning("execution %s (%s) ended: %s", execution_id, reason, task.exception())
        elif task.exception() is not None:
            exc = task.exception()
            outcome = f"error: {exc!r}"
            log.error("execution %s (%s) crashed: %r", execution_id, reason, exc, exc_info=exc)
        else:
            outcome = "completed"
        if reason != "submitted":
            kind = "succeeded" if outcome == "completed" else outcome.partition(":")[0]
            record_recovery(reason, "failed" if kind == "error" else kind)
        self.recoveries.append((execution_id, reason, outcome))

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Join the recovery ring: heartbeat, claim loop, and (``supervise``) the supervisor."""
        rt = self.runtime
        policy = self.policies.recovery
        await ensure_runtime_tables(rt.pool)
        start_recovery()
        self._heartbeat = NodeHeartbeat(
            rt.pool,
            rt.leases,
            rt.node_id,
            policy,
            lambda: (self.pipeline_ids(), len(self._active), len(self._recovering)),
        )
        await self._heartbeat.start()
        if policy.enabled:
            heartbeat = self._heartbeat
            self.supervisor = RecoverySupervisor(
                rt.pool,
                rt.node_id,
                policy,
                pipeline_states=rt.read_model.tables.pipeline_states,
                recover=self.recover,
                busy=lambda: set(self._active),
                healthy=lambda: heartbeat.healthy,
                supervise=self.supervise,
                leases=None if isinstance(rt.leases, LeaseStore) else rt.leases,
                free_slots=lambda: self.free_recovery_slots,
            )
            await self.supervisor.start()

    def check(self) -> None:
        """Re-raise what ended the heartbeat or a supervisor loop (call it periodically)."""
        if self._heartbeat is not None:
            self._heartbeat.check()
        if self.supervisor is not None:
            self.supervisor.check()

    async def stop(self, *, cancel_running: bool = True) -> None:
        """Leave the ring; cancel the executions running here (their leases are released,
        so the supervisor hands them to another node after the crash timeout)."""
        supervisor, self.supervisor = self.supervisor, None
        heartbeat, self._heartbeat = self._heartbeat, None
        if supervisor is not None:
            await supervisor.stop()
        tasks = list(self._background)
        if cancel_running:
            for task in tasks:
                task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        if heartbeat is not None:
            await heartbeat.stop()
