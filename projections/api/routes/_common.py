"""Path parameters and documented error responses shared by the routers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path

from orchestrator.projections.api.models import ErrorOut

IDENTIFIER_PATTERN = r"^[^\x00-\x1f\x7f]+$"
"""What an identifier may hold (no control characters, NUL included): anything else is
a 422, never a query PostgreSQL refuses with a 500."""
IDENTIFIER_MAX = 256

ExecutionId = Annotated[
    str,
    Path(
        description="The execution's id, e.g. `exec_12345`.",
        max_length=IDENTIFIER_MAX,
        pattern=IDENTIFIER_PATTERN,
    ),
]

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "No such execution in the read model."}
}
