"""Every endpoint written once for both clients.

A request builder per endpoint (its parameters, docstring and reader) turns the
arguments into a ``Call``. ``Endpoint`` and ``Pager`` make a builder a method of
``Client`` (it returns the answer) and of ``AsyncClient`` (it returns an awaitable,
or an async iterator for listings): the clients differ only in ``_send``/``_pages``,
httpx's sync/async split.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Protocol, TypeVar, overload

import httpx
from pydantic import BaseModel

from orchestrator.client._calls import Call, Position, call, checked
from orchestrator.projections import (
    CheckpointList,
    EventPage,
    ExecutionOut,
    ExecutionPage,
    HealthOut,
    NamespaceOut,
    TaskList,
)

if TYPE_CHECKING:
    from orchestrator.client._async import AsyncClient
    from orchestrator.client._sync import Client

P = ParamSpec("P")
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)
Item = TypeVar("Item")
M = TypeVar("M", bound=BaseModel)
Transport = TypeVar("Transport", httpx.BaseTransport, httpx.AsyncBaseTransport)
_EMPTY = inspect.Signature.empty


def model(cls: type[M]) -> Callable[[httpx.Response], M]:
    """A reader validating the JSON body as ``cls`` (the server's own response model)."""
    return lambda response: cls.model_validate_json(checked(response).content)


def json_body(response: httpx.Response) -> dict[str, Any]:
    """A reader for endpoints answering a free-form JSON object."""
    body: dict[str, Any] = checked(response).json()
    return body


def text_body(response: httpx.Response) -> str:
    """A reader for text endpoints (metrics, the timeline page)."""
    return checked(response).text


#: The server's response model of each JSON endpoint (checked against its OpenAPI).
MODELS: Mapping[str, type[BaseModel]] = {
    "executions": ExecutionPage,
    "execution": ExecutionOut,
    "tasks": TaskList,
    "checkpoints": CheckpointList,
    "events": EventPage,
    "variables": NamespaceOut,
    "health": HealthOut,
}

READERS: Mapping[str, Callable[[httpx.Response], Any]] = {
    **{name: model(cls) for name, cls in MODELS.items()},
    "timeline_html": text_body,
    "timeline": json_body,
    "state": json_body,
    "metrics": text_body,
}


def state_frame(data: str) -> ExecutionOut:
    """One ``event: state`` message of the SSE stream."""
    return ExecutionOut.model_validate_json(data)


class Page(Protocol[T_co]):
    """A listing's page: its items (and a next cursor, named by the ``Pager``)."""

    @property
    def items(self) -> Sequence[T_co]: ...


class Endpoint(Generic[P, T_co]):
    """A client method: build the endpoint's ``Call`` and send it with the client's ``_send``."""

    def __init__(self, build: Callable[P, Call[T_co]]) -> None:
        self.build = build

    @overload
    def __get__(self, client: None, owner: type) -> Callable[P, Call[T_co]]: ...
    @overload
    def __get__(self, client: Client, owner: type) -> Callable[P, T_co]: ...
    @overload
    def __get__(self, client: AsyncClient, owner: type) -> Callable[P, Awaitable[T_co]]: ...
    def __get__(self, client: Any, owner: type) -> Any:
        if client is None:
            return self.build
        build = self.build
        return _dressed(lambda *args, **kwargs: client._send(build(*args, **kwargs)), build)


class Pager(Generic[P, Item]):
    """A client method iterating every item of a listing, fetching page after page.

    Each page is ``build`` again with the previous page's ``next_field`` as ``cursor``.
    """

    def __init__(
        self, page: Endpoint[P, Page[Item]], cursor: str, next_field: str, doc: str
    ) -> None:
        self.build, self.cursor, self.next_field, self.__doc__ = page.build, cursor, next_field, doc

    def following(self, page: Page[Item], kwargs: dict[str, Any]) -> dict[str, Any] | None:
        """The arguments of the page after ``page``; ``None`` after the last one."""
        after = getattr(page, self.next_field)
        return None if after is None else {**kwargs, self.cursor: after}

    @overload
    def __get__(self, client: None, owner: type) -> Pager[P, Item]: ...
    @overload
    def __get__(self, client: Client, owner: type) -> Callable[P, Iterator[Item]]: ...
    @overload
    def __get__(self, client: AsyncClient, owner: type) -> Callable[P, AsyncIterator[Item]]: ...
    def __get__(self, client: Any, owner: type) -> Any:
        if client is None:
            return self
        return _dressed(lambda *args, **kwargs: client._pages(self, args, kwargs), self.build, self)


def _dressed(run: Callable[..., Any], build: Callable[..., Any], doc: object = None) -> Any:
    """``run`` with ``build``'s name and parameters (and docstring, or ``doc``'s), for ``help``."""
    functools.update_wrapper(run, build)
    run.__doc__ = (doc or build).__doc__
    run.__signature__ = inspect.signature(build).replace(return_annotation=_EMPTY)  # type: ignore[attr-defined]
    return run


class _ByExecution(Protocol[T_co]):
    def __call__(
        self, execution_id: str, *, position: Position | None = None, wait_ms: int | None = None
    ) -> Call[T_co]: ...


def _by_execution(name: str, result: type[T], doc: str) -> _ByExecution[T]:
    """The builder of a read of one execution (``position``/``wait_ms`` only).

    ``result`` types the answer; ``READERS[name]`` reads it (``MODELS`` is the truth).
    """

    def build(
        execution_id: str, *, position: Position | None = None, wait_ms: int | None = None
    ) -> Call[T]:
        return call(
            name, READERS[name], execution_id=execution_id, position=position, wait_ms=wait_ms
        )

    build.__name__, build.__doc__ = name, doc
    return build


class _AfterPage(Protocol[T_co]):
    def __call__(
        self,
        execution_id: str,
        *,
        after: int | None = None,
        limit: int | None = None,
        position: Position | None = None,
        wait_ms: int | None = None,
    ) -> Call[T_co]: ...


def _after_page(name: str, result: type[T], doc: str) -> _AfterPage[T]:
    """The builder of one page of an execution's listing ordered by sequence (``after``)."""

    def build(
        execution_id: str,
        *,
        after: int | None = None,
        limit: int | None = None,
        position: Position | None = None,
        wait_ms: int | None = None,
    ) -> Call[T]:
        page = {"after": after, "limit": limit, "position": position, "wait_ms": wait_ms}
        return call(name, READERS[name], execution_id=execution_id, **page)

    build.__name__, build.__doc__ = f"{name}_page", doc
    return build


def executions_page(
    *,
    pipeline_id: str | None = None,
    status: str | None = None,
    created_after: datetime | None = None,
    created_before: datetime | None = None,
    cursor: str | None = None,
    limit: int | None = None,
    position: Position | None = None,
    wait_ms: int | None = None,
) -> Call[ExecutionPage]:
    """One page of executions, newest first."""
    return call("executions", READERS["executions"], **locals())


def variables(
    namespace: str, *, position: Position | None = None, wait_ms: int | None = None
) -> Call[NamespaceOut]:
    """A shared-state namespace and its variables."""
    return call("variables", READERS["variables"], **locals())


def state(
    execution_id: str,
    *,
    at: int | None = None,
    position: Position | None = None,
    wait_ms: int | None = None,
) -> Call[dict[str, Any]]:
    """The execution's state after the event at sequence ``at`` (default: latest)."""
    return call("state", READERS["state"], **locals())


def timeline_html(execution_id: str) -> Call[str]:
    """The timeline page's HTML."""
    return call("timeline_html", READERS["timeline_html"], execution_id=execution_id)


def metrics() -> Call[str]:
    """The API process's Prometheus metrics, as text."""
    return call("metrics", READERS["metrics"])


def health() -> Call[HealthOut]:
    """Whether the API reaches its database."""
    return call("health", READERS["health"])


checkpoints_page = _after_page(
    "checkpoints", CheckpointList, "One page of an execution's checkpoints, oldest first."
)
events_page = _after_page(
    "events", EventPage, "One page of an execution's archived events, in log order."
)


class Endpoints(Generic[Transport]):
    """Typed access to every query API endpoint; ``token`` is the API's bearer token.

    Every read takes ``position`` (a token from ``append``, or its string) and
    ``wait_ms`` for read-your-writes; listings page with ``*_page`` or iterate all.
    """

    _open: Callable[..., Any]  # the httpx client class of the subclass

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        transport: Transport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = self._open(
            base_url=base_url, headers=headers, timeout=timeout, transport=transport
        )

    executions_page = Endpoint(executions_page)
    executions = Pager(
        executions_page,
        "cursor",
        "next_cursor",
        "Every execution matching the filters (as ``executions_page``), page after page.",
    )
    execution = Endpoint(
        _by_execution("execution", ExecutionOut, "One execution's pipeline state.")
    )
    tasks = Endpoint(_by_execution("tasks", TaskList, "Every task of an execution."))
    checkpoints_page = Endpoint(checkpoints_page)
    checkpoints = Pager(
        checkpoints_page,
        "after",
        "next_after",
        "Every checkpoint of an execution, page after page.",
    )
    events_page = Endpoint(events_page)
    events = Pager(
        events_page, "after", "next_after", "Every archived event of an execution, page after page."
    )
    variables = Endpoint(variables)
    state = Endpoint(state)
    timeline = Endpoint(_by_execution("timeline", dict, "The data behind the timeline page."))
    timeline_html = Endpoint(timeline_html)
    metrics = Endpoint(metrics)
    health = Endpoint(health)
