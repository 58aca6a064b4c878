"""What resuming an execution checks first, and what it reuses.

An execution can be resumed when it exists, is not finished (``completed``,
``cancelled``), did not fail for good (a task failed with ``retryable=False``, or
validation refused it), and this node has code for its pipeline with the same tasks.
The outputs of completed tasks are reused as the state holds them (claim-checked ones
fetched and verified), never recomputed.
"""

from __future__ import annotations

from typing import Any

from orchestrator.events import ExecutionState
from orchestrator.runtime.pipeline import Pipeline
from orchestrator.state import RecoveryError, RestoredCheckpoint, StateRuntime

DONE = ("completed", "skipped")


def resume_target(
    pipeline_id: str | None, from_checkpoint: RestoredCheckpoint | None, execution_id: str | None
) -> str:
    """The execution ``resume_pipeline``'s arguments name (they must agree)."""
    if from_checkpoint is not None:
        if execution_id is not None and execution_id != from_checkpoint.execution_id:
            raise ValueError(
                f"checkpoint {from_checkpoint.id} is of execution "
                f"{from_checkpoint.execution_id}, not {execution_id}"
            )
        if pipeline_id is not None and pipeline_id != from_checkpoint.pipeline_id:
            raise ValueError(
                f"checkpoint {from_checkpoint.id} is of pipeline "
                f"{from_checkpoint.pipeline_id}, not {pipeline_id}"
            )
        execution_id = from_checkpoint.execution_id
    if execution_id is None:
        raise TypeError("resume_pipeline needs execution_id=... or from_checkpoint=...")
    return execution_id


def check_resumable(
    execution_id: str,
    state: ExecutionState,
    pipeline_id: str | None,
    code: Pipeline | None,
    node_id: str,
) -> Pipeline:
    """The pipeline to resume ``state`` with; ``RecoveryError`` saying why not."""
    if pipeline_id is not None and state.pipeline_id != pipeline_id:
        raise RecoveryError(
            execution_id, f"it is an execution of {state.pipeline_id!r}, not {pipeline_id!r}"
        )
    if state.status in ("completed", "cancelled"):
        raise RecoveryError(execution_id, f"it is {state.status} already")
    if state.status == "failed":
        final = [t for t in state.tasks.values() if t.status == "failed" and t.retryable is False]
        if final:
            raise RecoveryError(
                execution_id,
                f"task {final[0].task_id} failed with a non-retryable error: {final[0].error}",
            )
        if not any(t.status == "failed" for t in state.tasks.values()):
            raise RecoveryError(execution_id, f"it failed validation: {state.error}")
    if code is None:
        raise RecoveryError(
            execution_id, f"pipeline {state.pipeline_id!r} is not registered on node {node_id}"
        )
    if not code.matches(state.tasks):
        raise RecoveryError(
            execution_id,
            f"its tasks {sorted(state.tasks)} are not those of pipeline "
            f"{state.pipeline_id!r} on this node {sorted(t.task_id for t in code.tasks)}",
        )
    return code


async def completed_outputs(state: ExecutionState, rt: StateRuntime) -> dict[str, Any]:
    """The outputs of the tasks already done, claim-checked ones fetched, sealed ones
    decrypted."""
    out: dict[str, Any] = {}
    for tid, ts in state.tasks.items():
        if ts.status not in DONE:
            continue
        out[tid] = await rt.open_value(ts.outputs, state.execution_id)
    return out
