"""Path parameters and documented error responses shared by the routers."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Path

from orchestrator.projections.api.models import ErrorOut

ExecutionId = Annotated[str, Path(description="The execution's id, e.g. `exec_12345`.")]

NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "No such execution in the read model."}
}
