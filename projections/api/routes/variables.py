"""``/namespaces/{namespace}/variables``: the seed's shared state."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from orchestrator.projections.api._convert import variable_out
from orchestrator.projections.api._deps import Context
from orchestrator.projections.api.models import NamespaceOut

router = APIRouter(tags=["shared state"])


@router.get("/namespaces/{namespace}/variables", response_model=NamespaceOut)
async def get_variables(
    ctx: Context,
    namespace: Annotated[str, Path(description="The namespace, e.g. `research_pipeline`.")],
) -> NamespaceOut:
    """The namespace's live variables by name; a namespace never written to is empty."""
    rows = await ctx.queries.variables(ctx.pool, namespace)
    return NamespaceOut(
        namespace=namespace, variables={row["name"]: variable_out(row) for row in rows}
    )
