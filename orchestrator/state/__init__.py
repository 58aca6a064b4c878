"""``orchestrator.state``: the state-management API the seed document describes.

    from orchestrator.state import checkpoint, StateManager, DistributedLock, \\
        LeaderElection, StateMachine, BatchStateManager, RecoveryError

Connect once per process; inside, these names use that connection::

    async with orchestrator.connect(config="orchestrator.yaml") as state:
        ...

(``StateRuntime(...)`` + ``configure`` remain for tests and embedding: they assume
the tables and topics exist.)

``checkpoint`` is a module: ``checkpoint.save / list / restore / task_scope``.
"""

from orchestrator.commands.errors import ImmutableVariable, LeaseLost, StaleExpectedVersion
from orchestrator.commands.leader import LeaderElection
from orchestrator.commands.lock import DistributedLock
from orchestrator.debug.debugger import StateDebugger
from orchestrator.events.crypto import UserDataErased
from orchestrator.events.errors import InvalidTransition
from orchestrator.state import checkpoint
from orchestrator.state.batch import BatchStateManager, StateBatch
from orchestrator.state.blobs import FilesystemBlobStore, MemoryBlobStore, S3BlobStore
from orchestrator.state.errors import (
    CheckpointCorrupt,
    CheckpointNotFound,
    NeedsPostgres,
    NotConfigured,
    NotInTask,
    NoWriter,
    RecoveryError,
    StateError,
    StateNotFound,
)
from orchestrator.state.machine import PipelineStateMachine, StateMachine
from orchestrator.state.manager import SharedStateView, StateManager
from orchestrator.state.memory import MemoryReadModel
from orchestrator.state.readmodel import CheckpointRow, PostgresReadModel
from orchestrator.state.runtime import (
    StateRuntime,
    StateSettings,
    TaskContext,
    bound,
    configure,
    current_runtime,
    current_task,
    task_scope,
    use_runtime,
)

__all__ = [
    "BatchStateManager",
    "CheckpointCorrupt",
    "CheckpointNotFound",
    "CheckpointRow",
    "DistributedLock",
    "FilesystemBlobStore",
    "ImmutableVariable",
    "InvalidTransition",
    "LeaderElection",
    "LeaseLost",
    "MemoryBlobStore",
    "MemoryReadModel",
    "NeedsPostgres",
    "NoWriter",
    "NotConfigured",
    "NotInTask",
    "PipelineStateMachine",
    "PostgresReadModel",
    "RecoveryError",
    "S3BlobStore",
    "SharedStateView",
    "StaleExpectedVersion",
    "StateBatch",
    "StateDebugger",
    "StateError",
    "StateMachine",
    "StateManager",
    "StateNotFound",
    "StateRuntime",
    "StateSettings",
    "TaskContext",
    "UserDataErased",
    "bound",
    "checkpoint",
    "configure",
    "current_runtime",
    "current_task",
    "task_scope",
    "use_runtime",
]
