"""The write side: commands decided against state, appended by a fenced single writer.

* :func:`decide` (pure) turns a command into events, or refuses it
  (``InvalidTransition``) with the fold's own rules.
* :class:`ExecutionWriter` is the one writer of an execution: lease (epoch = fencing
  token), ownership event, read-model catch-up, then gapless sequences.
* :class:`SharedStateWriter` writes shared variables with compare-and-set.
* Leases, :class:`DistributedLock` and :class:`LeaderElection` coordinate processes.

``commands`` imports only ``events``; it reads folded state through the
:class:`ReadModel` port, which ``orchestrator.state`` wires to the projection.
"""

from orchestrator.commands._writer_parts import Prepared, WriterSettings
from orchestrator.commands.decide import (
    Cancel,
    Command,
    Complete,
    CompleteTask,
    CreateExecution,
    DeleteCheckpoints,
    Fail,
    FailTask,
    FailValidation,
    InvalidCommand,
    Pause,
    RestoreCheckpoint,
    Resume,
    SaveCheckpoint,
    SaveCheckpointWrites,
    ScheduleRetry,
    ScheduleTask,
    SkipTask,
    StartTask,
    StartValidation,
    SucceedValidation,
    decide,
    encode_fields,
    evolve,
)
from orchestrator.commands.errors import (
    CommandError,
    CoordinationUnavailable,
    ExecutionExists,
    ExecutionNotFound,
    ExecutionNotOwned,
    ImmutableVariable,
    LeaseError,
    LeaseLost,
    LockNotConfigured,
    LockTimeout,
    StaleExpectedVersion,
)
from orchestrator.commands.etcd_leases import EtcdLeaseStore
from orchestrator.commands.leader import LeaderElection
from orchestrator.commands.leases import (
    TRANSIENT_ERRORS,
    CoordinationStore,
    DefaultStore,
    Lease,
    LeaseStore,
    node_label,
)
from orchestrator.commands.lock import DistributedLock, LockInfo, list_locks
from orchestrator.commands.memory import MemoryLeaseStore
from orchestrator.commands.ports import (
    Appender,
    InMemoryReadModel,
    Leases,
    ReadModel,
    ReadModelTimeout,
    UserDataSettings,
    encode_value,
    fold_shared_into,
)
from orchestrator.commands.presence import Presence, live_holders
from orchestrator.commands.shared import (
    DeleteVariable,
    SetVariable,
    SharedSettings,
    SharedStateWriter,
    VariableNotFound,
    VariableTypeMismatch,
    decide_shared,
)
from orchestrator.commands.together import execute_together, submit_many
from orchestrator.commands.writer import ExecutionWriter

__all__ = [
    "TRANSIENT_ERRORS",
    "Appender",
    "Cancel",
    "Command",
    "CommandError",
    "Complete",
    "CompleteTask",
    "CoordinationStore",
    "CoordinationUnavailable",
    "CreateExecution",
    "DefaultStore",
    "DeleteCheckpoints",
    "DeleteVariable",
    "DistributedLock",
    "EtcdLeaseStore",
    "ExecutionExists",
    "ExecutionNotFound",
    "ExecutionNotOwned",
    "ExecutionWriter",
    "Fail",
    "FailTask",
    "FailValidation",
    "ImmutableVariable",
    "InMemoryReadModel",
    "InvalidCommand",
    "LeaderElection",
    "Lease",
    "LeaseError",
    "LeaseLost",
    "LeaseStore",
    "Leases",
    "LockInfo",
    "LockNotConfigured",
    "LockTimeout",
    "MemoryLeaseStore",
    "Pause",
    "Prepared",
    "Presence",
    "ReadModel",
    "ReadModelTimeout",
    "RestoreCheckpoint",
    "Resume",
    "SaveCheckpoint",
    "SaveCheckpointWrites",
    "ScheduleRetry",
    "ScheduleTask",
    "SetVariable",
    "SharedSettings",
    "SharedStateWriter",
    "SkipTask",
    "StaleExpectedVersion",
    "StartTask",
    "StartValidation",
    "SucceedValidation",
    "UserDataSettings",
    "VariableNotFound",
    "VariableTypeMismatch",
    "WriterSettings",
    "decide",
    "decide_shared",
    "encode_fields",
    "encode_value",
    "evolve",
    "execute_together",
    "fold_shared_into",
    "list_locks",
    "live_holders",
    "node_label",
    "submit_many",
]
