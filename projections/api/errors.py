"""Errors the query API answers with, each mapped to one HTTP status.

    OrchestratorStateError
    └── ProjectionError                 (projections.errors)
        └── ApiError                    has ``status_code`` and a JSON body
            ├── ExecutionNotFound       404: no such execution in the read model
            ├── ReadModelBehind         504: ``position`` not applied within ``wait_ms``
            └── ReadModelUnavailable    503: PostgreSQL unreachable or tables missing

Bad query parameters are not here: they are FastAPI's ``RequestValidationError``
(422, naming the parameter), so our own checks answer in the same shape.
"""

from __future__ import annotations

from typing import Any, ClassVar

from orchestrator.events import error_fields
from orchestrator.projections.errors import ProjectionError


class ApiError(ProjectionError):
    """An error with an HTTP status, answered as RFC 9457 ``application/problem+json``.

    ``body()`` gives the error's own fields (``detail`` plus any it adds); the app's
    handler adds ``type``, ``title`` and ``status`` from the class.
    """

    status_code: ClassVar[int] = 500
    #: The last part of the problem's ``type`` URI (``urn:orchestrator-state:problem:...``).
    problem: ClassVar[str] = "internal-error"
    title: ClassVar[str] = "Internal error"

    def body(self) -> dict[str, Any]:
        """The error's fields: ``detail`` and any the error adds."""
        return {"detail": str(self)}


@error_fields("execution {execution_id!r} not found")
class ExecutionNotFound(ApiError):
    """The read model has no execution with this id (yet: pass ``position`` to wait)."""

    status_code = 404
    problem = "execution-not-found"
    title = "Execution not found"

    execution_id: str

    def body(self) -> dict[str, Any]:
        return {"detail": str(self), "execution_id": self.execution_id}


@error_fields("read model has not reached position {position} within {wait_ms} ms")
class ReadModelBehind(ApiError):
    """A read-your-writes wait that timed out; retrying later can succeed."""

    status_code = 504
    problem = "read-model-behind"
    title = "Read model behind the requested position"
    retriable = True

    position: str
    wait_ms: int

    def body(self) -> dict[str, Any]:
        return {"detail": str(self), "position": self.position, "wait_ms": self.wait_ms}


@error_fields("read model unavailable: {reason}")
class ReadModelUnavailable(ApiError):
    """PostgreSQL cannot answer: down, overloaded, or the read models not migrated."""

    status_code = 503
    problem = "read-model-unavailable"
    title = "Read model unavailable"
    retriable = True

    reason: str
