"""The query API's routes as data: one ``Call`` per request, shared by both clients.

``ROUTES`` lists every endpoint the clients speak (method, path, query parameters);
a test compares it with the server's OpenAPI document, so the two cannot drift.
A ``Call`` is what to send and how to read the answer; ``Client`` and
``AsyncClient`` differ only in how they send it (httpx's sync/async split).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

import httpx

from orchestrator.client._errors import ApiConnectionError, error_from

T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

READ = ("position", "wait_ms")


@dataclass(frozen=True, slots=True)
class Route:
    """One endpoint: HTTP method, path template and the query parameters it takes."""

    method: str
    path: str
    query: tuple[str, ...] = ()


ROUTES: Mapping[str, Route] = {
    "executions": Route(
        "GET",
        "/executions",
        ("pipeline_id", "status", "created_after", "created_before", "cursor", "limit", *READ),
    ),
    "execution": Route("GET", "/executions/{execution_id}", READ),
    "tasks": Route("GET", "/executions/{execution_id}/tasks", READ),
    "checkpoints": Route(
        "GET", "/executions/{execution_id}/checkpoints", ("after", "limit", *READ)
    ),
    "events": Route("GET", "/executions/{execution_id}/events", ("after", "limit", *READ)),
    "variables": Route("GET", "/namespaces/{namespace}/variables", READ),
    "stream": Route("GET", "/executions/{execution_id}/stream", READ),
    "timeline_html": Route("GET", "/executions/{execution_id}/timeline"),
    "timeline": Route("GET", "/executions/{execution_id}/timeline.json", READ),
    "state": Route("GET", "/executions/{execution_id}/state", ("at", *READ)),
    "metrics": Route("GET", "/metrics"),
    "health": Route("GET", "/health"),
}


class PositionLike(Protocol):
    """What ``append`` returns (``events.Position``); a plain token string works too."""

    def token(self) -> str: ...


Position = str | PositionLike


@dataclass(frozen=True, slots=True)
class Call(Generic[T_co]):
    """One request to send and the function that reads its answer."""

    route: Route
    path: str
    params: dict[str, str | int] = field(default_factory=dict)
    read: Callable[[httpx.Response], T_co] = field(default=lambda r: r)

    def request(self, client: httpx.Client | httpx.AsyncClient) -> httpx.Request:
        """The httpx request for ``client`` (its base URL and headers apply)."""
        return client.build_request(self.route.method, self.path, params=self.params)


def _value(value: object) -> str | int:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, int | str):
        return value
    token = getattr(value, "token", None)
    if callable(token):
        return str(token())
    return str(value)


def call(name: str, read: Callable[[httpx.Response], T], /, **args: Any) -> Call[T]:
    """A ``Call`` of endpoint ``name``: path parameters filled, ``None`` queries left out."""
    route = ROUTES[name]
    path_args = {
        k: httpx.URL(path=str(v)).raw_path.decode()
        for k, v in args.items()
        if "{" + k + "}" in route.path
    }
    unknown = set(args) - set(path_args) - set(route.query)
    if unknown:  # a programming error in this module, not a user's
        raise TypeError(f"{name}: unknown parameters {sorted(unknown)}")
    params = {k: _value(v) for k, v in args.items() if k in route.query and v is not None}
    return Call(route, route.path.format(**path_args), params, read)


def checked(response: httpx.Response) -> httpx.Response:
    """``response`` if it succeeded; else the typed error carrying the server's problem."""
    if response.is_success:
        return response
    raise error_from(response)


@contextmanager
def reaching(http: httpx.Client | httpx.AsyncClient) -> Iterator[None]:
    """An httpx transport failure inside becomes ``ApiConnectionError`` naming the API."""
    try:
        yield
    except httpx.TransportError as exc:
        raise ApiConnectionError(str(http.base_url), repr(exc)) from exc
