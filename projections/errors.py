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

from orchestrator.events.errors import OrchestratorStateError, where


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
