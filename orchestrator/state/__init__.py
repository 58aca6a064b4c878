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

from orchestrator.commands import (
    ImmutableVariable,
    LeaseLost,
    StaleExpectedVersion,
)
from orchestrator.events import InvalidTransition, UserDataErased
from orchestrator.state import checkpoint
from orchestrator.state.batch import BatchStateManager, StateBatch
from orchestrator.state.blobs import FilesystemBlobStore, MemoryBlobStore, S3BlobStore
from orchestrator.state.cache import EXECUTION, CacheConfig, CachePolicy, LevelSpec, scope_of
from orchestrator.state.checkpoint import RestoredCheckpoint
from orchestrator.state.coordination import DistributedLock, LeaderElection
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
from orchestrator.state.manager import Consistency, SharedStateView, StateManager
from orchestrator.state.memory import MemoryReadModel
from orchestrator.state.memoryhistory import MemoryHistory
from orchestrator.state.readmodel import CheckpointRow, PostgresReadModel
from orchestrator.state.redis_readmodel import RedisReadModel
from orchestrator.state.running_task import TaskContext, bound, current_task, task_scope
from orchestrator.state.sealed import decode_any, decode_chain, open_any
from orchestrator.state.services import (
    StateRuntime,
    StateSettings,
    configure,
    current_runtime,
    use_runtime,
)
from orchestrator.state.sync import STRATEGIES, SyncPolicy

__all__ = [
    "EXECUTION",
    "STRATEGIES",
    "BatchStateManager",
    "CacheConfig",
    "CachePolicy",
    "CheckpointCorrupt",
    "CheckpointNotFound",
    "CheckpointRow",
    "Consistency",
    "DistributedLock",
    "FilesystemBlobStore",
    "ImmutableVariable",
    "InvalidTransition",
    "LeaderElection",
    "LeaseLost",
    "LevelSpec",
    "MemoryBlobStore",
    "MemoryHistory",
    "MemoryReadModel",
    "NeedsPostgres",
    "NoWriter",
    "NotConfigured",
    "NotInTask",
    "PipelineStateMachine",
    "PostgresReadModel",
    "RecoveryError",
    "RedisReadModel",
    "RestoredCheckpoint",
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
    "SyncPolicy",
    "TaskContext",
    "UserDataErased",
    "bound",
    "checkpoint",
    "configure",
    "current_runtime",
    "current_task",
    "decode_any",
    "decode_chain",
    "open_any",
    "scope_of",
    "task_scope",
    "use_runtime",
]


def __getattr__(name: str) -> object:
    """``StateDebugger`` lives in ``orchestrator.debug``, which is built on this package.

    The seed imports it from here; resolving it on first use keeps the two packages'
    imports one-way (debug -> state) while they load.
    """
    if name == "StateDebugger":
        from orchestrator.debug import StateDebugger

        return StateDebugger
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
