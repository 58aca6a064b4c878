"""The pipeline runtime: ``Orchestrator`` runs pipelines of async tasks and survives crashes.

* :class:`Pipeline` / :class:`TaskContext`: pipelines defined in Python (``pipeline``,
  ``context`` modules);
* :class:`Orchestrator`: ``run_pipeline``, ``submit``, ``resume_pipeline``; ``start()``
  joins the recovery ring (``health``, ``supervisor``);
* :class:`RetryPolicy`, :class:`CheckpointPolicy`, :class:`RecoveryPolicy`: the seed's
  ``recovery`` and ``checkpointing`` blocks as values (``policy``; built from settings
  by ``orchestrator.wiring``).
"""

from orchestrator.runtime._result import PipelineResult
from orchestrator.runtime._schema import ensure_runtime_tables
from orchestrator.runtime.context import TaskContext, current_context
from orchestrator.runtime.errors import (
    PipelineDefinitionError,
    PipelineError,
    PipelineFailed,
    RecoveryError,
    TaskError,
)
from orchestrator.runtime.health import NodeHeartbeat
from orchestrator.runtime.orchestrator import Orchestrator
from orchestrator.runtime.pipeline import Pipeline, TaskDefinition, registered_pipeline
from orchestrator.runtime.policy import (
    CheckpointPolicy,
    Policies,
    RecoveryPolicy,
    RetryPolicy,
    is_retryable,
)
from orchestrator.runtime.supervisor import Orphan, RecoverySupervisor

__all__ = [
    "CheckpointPolicy",
    "NodeHeartbeat",
    "Orchestrator",
    "Orphan",
    "Pipeline",
    "PipelineDefinitionError",
    "PipelineError",
    "PipelineFailed",
    "PipelineResult",
    "Policies",
    "RecoveryError",
    "RecoveryPolicy",
    "RecoverySupervisor",
    "RetryPolicy",
    "TaskContext",
    "TaskDefinition",
    "TaskError",
    "current_context",
    "ensure_runtime_tables",
    "is_retryable",
    "registered_pipeline",
]
