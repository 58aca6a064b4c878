"""Errors of the read side.

    OrchestratorStateError
    └── ProjectionError
        ├── ProcessorFailed       a processor stopped on an unexpected error (names where)
        ├── DeadLetterNotFound    ``dlq replay`` of an id that is not in ``dead_letters``
        ├── DeadLetterRefused     ``dlq replay`` of bytes that do not decode (names why)
        └── RebuildError          a rebuild could not finish or swap (names the step)

A fenced-off write (another member already advanced a partition) is not an error:
the processor rolls back, re-seeks and goes on.
"""

from __future__ import annotations

import asyncpg

from orchestrator.events import AtRecord, LogError, OrchestratorStateError, error_fields

POSTGRES_OUTAGE: tuple[type[Exception], ...] = (
    OSError,  # refused, reset, timed out (TimeoutError is an OSError)
    asyncpg.PostgresConnectionError,
    asyncpg.InterfaceError,  # the connection went away under a query
    asyncpg.OperatorInterventionError,  # admin shutdown, "the database system is starting up"
    asyncpg.TooManyConnectionsError,
    # What asyncpg raises on a connection that broke mid-operation (a server SIGKILLed
    # under a query: "cannot switch to state 12; another operation is in progress"); the
    # pool discards that connection, so a later try gets a fresh one.
    asyncpg.InternalClientError,
)
"""PostgreSQL errors that waiting can cure (a restart, a failover, the network)."""


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps, a few causes deep) is an outage of PostgreSQL,
    Kafka (a retriable ``LogError``) or the network: ride it out, do not exit."""
    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return False
        if isinstance(seen, POSTGRES_OUTAGE) or (isinstance(seen, LogError) and seen.retriable):
            return True
        seen = seen.__cause__
    return False


class ProjectionError(OrchestratorStateError):
    """An error of the processors, read models, dead letters or rebuild."""


@error_fields("projection {projection} failed{_where}: {reason}")
class ProcessorFailed(ProjectionError, AtRecord):
    """A processor hit an unexpected error; it stops so that the platform restarts it."""

    projection: str
    reason: str


@error_fields("no dead letter with id {dead_letter_id}")
class DeadLetterNotFound(ProjectionError):
    """No dead letter has this id."""

    dead_letter_id: int


@error_fields("dead letter {dead_letter_id} not replayed: its bytes are not an event ({reason})")
class DeadLetterRefused(ProjectionError):
    """A dead letter that would only be poison again: its bytes do not decode."""

    dead_letter_id: int
    reason: str


@error_fields("rebuild of {projection} failed while {step}: {reason}")
class RebuildError(ProjectionError):
    """A rebuild failed at ``step``; the live tables are untouched unless it says so."""

    projection: str
    step: str
    reason: str
