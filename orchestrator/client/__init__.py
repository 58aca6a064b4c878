"""A typed Python client for the query API (sync and async, on httpx).

    async with AsyncClient("http://127.0.0.1:8080", token=...) as api:
        state = await api.execution("exec_12345", position=appended)  # read-your-writes
        async for event in api.events("exec_12345"):
            ...
        async for state in api.stream("exec_12345"):  # server-sent events
            ...

Responses are the server's own pydantic models; errors are ``ApiClientError``
subclasses carrying the server's RFC 9457 problem. A test checks every endpoint of
the server's OpenAPI document against ``ROUTES``.
"""

from orchestrator.client._async import AsyncClient
from orchestrator.client._calls import ROUTES, Route
from orchestrator.client._errors import (
    ApiClientError,
    ApiConnectionError,
    InvalidRequest,
    NotFound,
    ReadModelBehind,
    Unauthorized,
    Unavailable,
)
from orchestrator.client._sync import Client

__all__ = [
    "ROUTES",
    "ApiClientError",
    "ApiConnectionError",
    "AsyncClient",
    "Client",
    "InvalidRequest",
    "NotFound",
    "ReadModelBehind",
    "Route",
    "Unauthorized",
    "Unavailable",
]
