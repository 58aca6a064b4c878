"""Errors of the public state API.

    OrchestratorStateError                      (events.errors)
    └── StateError                              the state API refused or could not answer
        ├── RecoveryError(execution_id, reason) an execution cannot be recovered
        ├── NotInTask                           checkpoint.save outside a running task
        ├── NotConfigured(what)                 no state runtime configured for this process
        ├── NoWriter(execution_id)              no writer for the execution in this process
        ├── StateNotFound(kind, key)            no such execution / task in the read model
        │   └── CheckpointNotFound(checkpoint_id)
        └── CheckpointCorrupt(checkpoint_id, reason)
                                                checkpoint data that fails verification

Write-side errors (``InvalidTransition``, ``ImmutableVariable``, ``StaleExpectedVersion``,
``LeaseLost``...) come from ``events`` and ``commands`` unchanged.
"""

from __future__ import annotations

from orchestrator.events import OrchestratorStateError, error_fields


class StateError(OrchestratorStateError):
    """The state API refused a call or could not answer it."""


class RecoveryError(StateError):
    """An execution cannot be recovered.

    Built either as ``RecoveryError(execution_id, reason)`` or, as the seed's manual
    recovery example does, with one message: ``RecoveryError("Pipeline x is not ...")``.
    """

    def __init__(self, execution_id: str, reason: str | None = None) -> None:
        if reason is None:
            self.execution_id: str | None = None
            self.reason = execution_id
            super().__init__(execution_id)
        else:
            self.execution_id = execution_id
            self.reason = reason
            super().__init__(f"execution {execution_id} cannot be recovered: {reason}")


@error_fields(
    "{what} must be called inside a running task (the orchestrator sets the task "
    "scope; in tests use `with checkpoint.task_scope(writer, task_id):`)"
)
class NotInTask(StateError):
    """A task-scoped call (``checkpoint.save``) made outside a running task."""

    what: str


@error_fields(
    "{what}: not connected; use it inside `async with orchestrator.connect(...)` "
    "(it reads KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL), or pass runtime=..."
)
class NotConfigured(StateError):
    """The state API was used before a runtime was configured for this process."""

    what: str


@error_fields(
    "{feature} needs the PostgreSQL backend; this runtime has no PostgreSQL pool "
    "(the memory backend)"
)
class NeedsPostgres(StateError):
    """A feature that reads PostgreSQL directly, used on a runtime without a pool."""

    feature: str


@error_fields(
    "no writer for execution {execution_id} in this process: create or open it "
    "with runtime.create_execution(...) / runtime.open_execution(...)"
)
class NoWriter(StateError):
    """A write to an execution this process has no writer for (it does not own it)."""

    execution_id: str


@error_fields("{kind} {key} not found")
class StateNotFound(StateError):
    """The read model has no such execution, task or checkpoint."""

    kind: str
    key: str


class CheckpointNotFound(StateNotFound):
    """No checkpoint has this id."""

    def __init__(self, checkpoint_id: str) -> None:
        self.checkpoint_id = checkpoint_id
        super().__init__("checkpoint", checkpoint_id)


@error_fields("checkpoint {checkpoint_id} is corrupt: {reason}")
class CheckpointCorrupt(StateError):
    """A checkpoint's data cannot be read back intact (blob missing or tampered with)."""

    checkpoint_id: str
    reason: str
