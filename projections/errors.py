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

from orchestrator.events import LogError, OrchestratorStateError, where

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


class ProcessorFailed(ProjectionError):
    """A processor hit an unexpected error; it stops so that the platform restarts it."""

    def __init__(
        self,
        projection: str,
        reason: str,
        *,
        topic: str | None = None,
        partition: int | None = None,
        offset: int | None = None,
        execution_id: str | None = None,
    ) -> None:
        self.projection = projection
        self.reason = reason
        self.topic = topic
        self.partition = partition
        self.offset = offset
        self.execution_id = execution_id
        context = where(topic, partition, offset, execution_id)
        super().__init__(f"projection {projection} failed{context}: {reason}")


class DeadLetterNotFound(ProjectionError):
    """No dead letter has this id."""

    def __init__(self, dead_letter_id: int) -> None:
        self.dead_letter_id = dead_letter_id
        super().__init__(f"no dead letter with id {dead_letter_id}")


class DeadLetterRefused(ProjectionError):
    """A dead letter that would only be poison again: its bytes do not decode."""

    def __init__(self, dead_letter_id: int, reason: str) -> None:
        self.dead_letter_id = dead_letter_id
        self.reason = reason
        super().__init__(
            f"dead letter {dead_letter_id} not replayed: its bytes are not an event ({reason})"
        )


class RebuildError(ProjectionError):
    """A rebuild failed at ``step``; the live tables are untouched unless it says so."""

    def __init__(self, projection: str, step: str, reason: str) -> None:
        self.projection = projection
        self.step = step
        self.reason = reason
        super().__init__(f"rebuild of {projection} failed while {step}: {reason}")
