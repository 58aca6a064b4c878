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

from dataclasses import KW_ONLY
from datetime import datetime

from orchestrator.events import OrchestratorStateError, error_fields


class CommandError(OrchestratorStateError):
    """A command was refused, or the write side failed; nothing was written."""


class LeaseError(CommandError):
    """The lease machinery (leases, locks, leader election) refused or failed."""


@error_fields("lease {name!r} lost by {holder!r} (epoch {epoch}): {_now}")
class LeaseLost(LeaseError):
    """A lease we held has expired or been taken over; our epoch is fenced off.

    Whatever the holder did since its last successful renewal may overlap with
    the next holder's work: it must stop writing at once. Not retriable: the
    caller has to take the lease again (and gets a new epoch).
    """

    name: str
    holder: str
    epoch: int
    _: KW_ONLY
    current_holder: str | None = None
    current_epoch: int | None = None
    expires_at: datetime | None = None

    @property
    def _now(self) -> str:
        if self.current_holder is None:
            return "no longer held"
        return f"now held by {self.current_holder!r} at epoch {self.current_epoch}"


@error_fields("{holder!r} could not acquire lock {name!r} within {timeout:g}s")
class LockTimeout(LeaseError):
    """A lock (or lease) could not be taken within the timeout; someone else holds it."""

    retriable = True

    name: str
    holder: str
    timeout: float


@error_fields(
    "{what}: not connected to PostgreSQL; use it inside "
    "`async with orchestrator.connect(...)`, or pass pool=..."
)
class LockNotConfigured(LeaseError):
    """A lock or election was used without a pool, and no default pool is configured."""

    what: str


@error_fields(
    "{backend} unreachable at {_endpoints} ({reason}): "
    "is the cluster up and the address right (distributed.coordination.endpoints)?"
)
class CoordinationUnavailable(LeaseError):
    """No coordination endpoint (e.g. no etcd member) answered within the deadline.

    Retriable: the callers that renew or campaign ride it out with backoff.
    """

    retriable = True

    backend: str
    endpoints: list[str]
    reason: str

    @property
    def _endpoints(self) -> str:
        return ", ".join(self.endpoints)


@error_fields(
    "shared variable {namespace}/{name}: expected version {expected}, current is {actual}"
)
class StaleExpectedVersion(CommandError):
    """A write said which version it expected, and the current version differs.

    Retriable: re-read the current value, decide again, and write with the new version.
    """

    retriable = True

    namespace: str
    name: str
    expected: int | None
    actual: int | None


@error_fields("shared variable {namespace}/{name} is immutable")
class ImmutableVariable(CommandError):
    """A write to a shared variable that was declared immutable."""

    namespace: str
    name: str


@error_fields("execution {execution_id} is not owned{_by}")
class ExecutionNotOwned(CommandError):
    """A write to an execution whose lease this writer does not hold (or holds at an old epoch)."""

    execution_id: str
    holder: str | None = None
    epoch: int | None = None

    @property
    def _by(self) -> str:
        who = "" if self.holder is None else f" by {self.holder!r}"
        return who + ("" if self.epoch is None else f" at epoch {self.epoch}")


@error_fields("execution {execution_id} does not exist in the read model")
class ExecutionNotFound(CommandError):
    """Ownership of an execution the read model does not know (never created, or the
    projection has not applied its creation)."""

    execution_id: str


@error_fields("execution {execution_id} already exists")
class ExecutionExists(CommandError):
    """``create`` of an execution that already exists."""

    execution_id: str


class EpochBelowLog(Exception):
    """Internal to the writer: the log holds an epoch above our lease's (written without
    a lease); the takeover retries with a lease above it."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
