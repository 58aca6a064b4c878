"""The query API over the read models: FastAPI, served by uvicorn.

``create_app(ApiSettings(...))`` builds an app; its lifespan opens an asyncpg pool and
one LISTEN connection. Reads accept ``position`` + ``wait_ms`` for read-your-writes.
"""

from orchestrator.projections.api.app import create_app
from orchestrator.projections.api.errors import (
    ApiError,
    ExecutionNotFound,
    ReadModelBehind,
    ReadModelUnavailable,
)
from orchestrator.projections.api.settings import ApiSettings

__all__ = [
    "ApiError",
    "ApiSettings",
    "ExecutionNotFound",
    "ReadModelBehind",
    "ReadModelUnavailable",
    "create_app",
]
