"""Errors of the pipeline runtime.

    OrchestratorStateError                          (events.errors)
    ├── StateError                                  (orchestrator.state.errors)
    │   └── RecoveryError(execution_id, reason)     an execution cannot be resumed: unknown,
    │                                               finished, code not registered here,
    │                                               failed for good, owned by a live node
    └── PipelineError                               a pipeline could not be defined or run
        ├── PipelineDefinitionError(pipeline_id, reason)
        │                                           unknown dependency, cycle, bad task signature
        ├── PipelineFailed(execution_id, pipeline_id, task_id, error, retryable)
        │                                           the execution ended ``failed``
        └── TaskError(message, retryable=True)      raised by task code to say whether a retry
                                                    can help (``retryable=False``: fail now)

Resuming uses the state API's ``RecoveryError`` so the seed's ``PipelineRecovery``
example catches the same class the runtime raises. Ownership errors (``LeaseLost``,
``ExecutionNotOwned``) come from ``commands`` unchanged: another node owns the
execution now and this one must stop.
"""

from __future__ import annotations

from dataclasses import KW_ONLY

from orchestrator.events import OrchestratorStateError, error_fields
from orchestrator.state import RecoveryError

__all__ = [
    "PipelineDefinitionError",
    "PipelineError",
    "PipelineFailed",
    "RecoveryError",
    "TaskError",
]


class PipelineError(OrchestratorStateError):
    """A pipeline could not be defined or run."""


@error_fields("pipeline {pipeline_id!r}: {reason}")
class PipelineDefinitionError(PipelineError):
    """A pipeline whose tasks cannot run as declared (found when it is defined)."""

    pipeline_id: str
    reason: str


@error_fields("execution {execution_id} of {pipeline_id} failed in {_where}: {error}")
class PipelineFailed(PipelineError):
    """The execution ended ``failed``: a task failed for good (retries exhausted or a
    non-retryable error) or validation refused the input. ``retryable`` says whether
    ``resume_pipeline(execution_id=...)`` may try the failed task again."""

    execution_id: str
    pipeline_id: str
    task_id: str | None
    error: str
    _: KW_ONLY
    retryable: bool

    @property
    def _where(self) -> str:
        return f"task {self.task_id}" if self.task_id else "validation"


class TaskError(PipelineError):
    """Raise from a task to fail it with an explicit retry decision.

    Any other exception fails the task too and is retried (``retry_from_checkpoint``),
    unless it carries ``retryable = False`` (or, for this product's errors,
    ``retriable = False``).
    """

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        self.retryable = retryable
        self.retriable = retryable
        super().__init__(message)
