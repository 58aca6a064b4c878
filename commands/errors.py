"""Errors of the write side: commands, leases, locks and leader election.

    OrchestratorStateError                      (events.errors)
    └── CommandError                            a command refused or a write-side failure
        ├── LeaseError                          the lease machinery refused or failed
        │   ├── LeaseLost(name, holder, epoch)  a lease we held is no longer ours (fenced)
        │   ├── LockTimeout(name, holder, timeout)
        │   │                                   could not take a lock in time (retriable)
        │   └── LockNotConfigured(what)     no pool given to a lock/election, none configured
        ├── StaleExpectedVersion(namespace, name, expected, actual)
        │                                       optimistic-concurrency check failed (retriable)
        ├── ImmutableVariable(namespace, name)  a write to a variable declared immutable
        └── ExecutionNotOwned(execution_id, holder, epoch)
                                                the writer does not hold the execution's lease

``InvalidTransition`` (a status change the state machine forbids) stays in
``events.errors``; command handlers raise it as is.

Every exception carries its fields as attributes, so callers branch on data,
not on message text. ``retriable`` says whether trying the same thing again
can succeed without anyone changing anything first.
"""

from __future__ import annotations

from datetime import datetime

from orchestrator.events import OrchestratorStateError


class CommandError(OrchestratorStateError):
    """A command was refused, or the write side failed; nothing was written."""


class LeaseError(CommandError):
    """The lease machinery (leases, locks, leader election) refused or failed."""


class LeaseLost(LeaseError):
    """A lease we held has expired or been taken over; our epoch is fenced off.

    Whatever the holder did since its last successful renewal may overlap with
    the next holder's work: it must stop writing at once. Not retriable: the
    caller has to take the lease again (and gets a new epoch).
    """

    def __init__(
        self,
        name: str,
        holder: str,
        epoch: int,
        *,
        current_holder: str | None = None,
        current_epoch: int | None = None,
        expires_at: datetime | None = None,
    ) -> None:
        self.name = name
        self.holder = holder
        self.epoch = epoch
        self.current_holder = current_holder
        self.current_epoch = current_epoch
        self.expires_at = expires_at
        now = (
            "no longer held"
            if current_holder is None
            else f"now held by {current_holder!r} at epoch {current_epoch}"
        )
        super().__init__(f"lease {name!r} lost by {holder!r} (epoch {epoch}): {now}")


class LockTimeout(LeaseError):
    """A lock (or lease) could not be taken within the timeout; someone else holds it."""

    retriable = True

    def __init__(self, name: str, holder: str, timeout: float) -> None:
        self.name = name
        self.holder = holder
        self.timeout = timeout
        super().__init__(f"{holder!r} could not acquire lock {name!r} within {timeout:g}s")


class LockNotConfigured(LeaseError):
    """A lock or election was used without a pool, and no default pool is configured."""

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(
            f"{what}: not connected to PostgreSQL; use it inside "
            "`async with orchestrator.connect(...)`, or pass pool=..."
        )


class CoordinationUnavailable(LeaseError):
    """No coordination endpoint (e.g. no etcd member) answered within the deadline.

    Retriable: the callers that renew or campaign ride it out with backoff.
    """

    retriable = True

    def __init__(self, backend: str, endpoints: list[str], reason: str) -> None:
        self.backend = backend
        self.endpoints = endpoints
        super().__init__(
            f"{backend} unreachable at {', '.join(endpoints)} ({reason}): "
            "is the cluster up and the address right (distributed.coordination.endpoints)?"
        )


class StaleExpectedVersion(CommandError):
    """A write said which version it expected, and the current version differs.

    Retriable: re-read the current value, decide again, and write with the new version.
    """

    retriable = True

    def __init__(self, namespace: str, name: str, expected: int | None, actual: int | None) -> None:
        self.namespace = namespace
        self.name = name
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"shared variable {namespace}/{name}: expected version {expected}, current is {actual}"
        )


class ImmutableVariable(CommandError):
    """A write to a shared variable that was declared immutable."""

    def __init__(self, namespace: str, name: str) -> None:
        self.namespace = namespace
        self.name = name
        super().__init__(f"shared variable {namespace}/{name} is immutable")


class ExecutionNotOwned(CommandError):
    """A write to an execution whose lease this writer does not hold (or holds at an old epoch)."""

    def __init__(
        self, execution_id: str, holder: str | None = None, epoch: int | None = None
    ) -> None:
        self.execution_id = execution_id
        self.holder = holder
        self.epoch = epoch
        who = "" if holder is None else f" by {holder!r}"
        at = "" if epoch is None else f" at epoch {epoch}"
        super().__init__(f"execution {execution_id} is not owned{who}{at}")


class ExecutionNotFound(CommandError):
    """Ownership of an execution the read model does not know (never created, or the
    projection has not applied its creation)."""

    def __init__(self, execution_id: str) -> None:
        self.execution_id = execution_id
        super().__init__(f"execution {execution_id} does not exist in the read model")


class ExecutionExists(CommandError):
    """``create`` of an execution that already exists."""

    def __init__(self, execution_id: str) -> None:
        self.execution_id = execution_id
        super().__init__(f"execution {execution_id} already exists")


class EpochBelowLog(Exception):
    """Internal to the writer: the log holds an epoch above our lease's (written without
    a lease); the takeover retries with a lease above it."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
