"""``Client``: the query API from plain (blocking) code; ``AsyncClient``'s mirror."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx
from httpx_sse import connect_sse

from orchestrator.client._calls import READERS, Call, Position, call, checked, state_frame
from orchestrator.client._errors import ApiConnectionError
from orchestrator.projections.api.models import (
    CheckpointList,
    CheckpointOut,
    EventOut,
    EventPage,
    ExecutionOut,
    ExecutionPage,
    ExecutionSummary,
    HealthOut,
    NamespaceOut,
    TaskList,
)

T = TypeVar("T")


class Client:
    """Typed access to every query API endpoint; ``token`` is the API's bearer token.

    Every read takes ``position`` (a token from ``append``, or its string) and
    ``wait_ms`` for read-your-writes; listings page with ``*_page`` or iterate all.
    """

    def __init__(
        self,
        base_url: str,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(
            base_url=base_url, headers=headers, timeout=timeout, transport=transport
        )

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def _send(self, c: Call[T]) -> T:
        try:
            response = self._http.send(c.request(self._http))
        except httpx.TransportError as exc:
            raise ApiConnectionError(str(self._http.base_url), repr(exc)) from exc
        return c.read(response)

    def _get(self, name: str, **args: Any) -> Any:
        return self._send(call(name, READERS[name], **args))

    def _pages(
        self, fetch: Any, cursor: str, next_field: str, args: dict[str, Any]
    ) -> Iterator[Any]:
        """Every item of a paged listing: ``fetch`` again with ``next_field`` as ``cursor``."""
        args = dict(args)
        while True:
            page = fetch(**args)
            yield from page.items

            args[cursor] = getattr(page, next_field)
            if args[cursor] is None:
                return

    def executions_page(
        self,
        *,
        pipeline_id: str | None = None,
        status: str | None = None,
        created_after: datetime | None = None,
        created_before: datetime | None = None,
        cursor: str | None = None,
        limit: int | None = None,
        position: Position | None = None,
        wait_ms: int | None = None,
    ) -> ExecutionPage:
        """One page of executions, newest first."""
        page: ExecutionPage = self._get("executions", **_args(locals()))
        return page

    def executions(self, **filters: Any) -> Iterator[ExecutionSummary]:
        """Every execution matching ``filters`` (as ``executions_page``), page after page."""
        yield from self._pages(self.executions_page, "cursor", "next_cursor", filters)

    def execution(
        self, execution_id: str, *, position: Position | None = None, wait_ms: int | None = None
    ) -> ExecutionOut:
        """One execution's pipeline state."""
        out: ExecutionOut = self._get("execution", **_args(locals()))
        return out

    def tasks(
        self, execution_id: str, *, position: Position | None = None, wait_ms: int | None = None
    ) -> TaskList:
        """Every task of an execution."""
        out: TaskList = self._get("tasks", **_args(locals()))
        return out

    def checkpoints_page(
        self,
        execution_id: str,
        *,
        after: int | None = None,
        limit: int | None = None,
        position: Position | None = None,
        wait_ms: int | None = None,
    ) -> CheckpointList:
        """One page of an execution's checkpoints, oldest first."""
        page: CheckpointList = self._get("checkpoints", **_args(locals()))
        return page

    def checkpoints(self, execution_id: str, **options: Any) -> Iterator[CheckpointOut]:
        """Every checkpoint of an execution, page after page."""
        options["execution_id"] = execution_id
        page = self.checkpoints_page
        yield from self._pages(page, "after", "next_after", options)

    def events_page(
        self,
        execution_id: str,
        *,
        after: int | None = None,
        limit: int | None = None,
        position: Position | None = None,
        wait_ms: int | None = None,
    ) -> EventPage:
        """One page of an execution's archived events, in log order."""
        page: EventPage = self._get("events", **_args(locals()))
        return page

    def events(self, execution_id: str, **options: Any) -> Iterator[EventOut]:
        """Every archived event of an execution, page after page."""
        options["execution_id"] = execution_id
        page = self.events_page
        yield from self._pages(page, "after", "next_after", options)

    def variables(
        self, namespace: str, *, position: Position | None = None, wait_ms: int | None = None
    ) -> NamespaceOut:
        """A shared-state namespace and its variables."""
        out: NamespaceOut = self._get("variables", **_args(locals()))
        return out

    def state(
        self,
        execution_id: str,
        *,
        at: int | None = None,
        position: Position | None = None,
        wait_ms: int | None = None,
    ) -> dict[str, Any]:
        """The execution's state after the event at sequence ``at`` (default: latest)."""
        out: dict[str, Any] = self._get("state", **_args(locals()))
        return out

    def timeline(
        self, execution_id: str, *, position: Position | None = None, wait_ms: int | None = None
    ) -> dict[str, Any]:
        """The data behind the timeline page."""
        out: dict[str, Any] = self._get("timeline", **_args(locals()))
        return out

    def timeline_html(self, execution_id: str) -> str:
        """The timeline page's HTML."""
        out: str = self._get("timeline_html", execution_id=execution_id)
        return out

    def metrics(self) -> str:
        """The API process's Prometheus metrics, as text."""
        out: str = self._get("metrics")
        return out

    def health(self) -> HealthOut:
        """Whether the API reaches its database."""
        out: HealthOut = self._get("health")
        return out

    def stream(
        self, execution_id: str, *, position: Position | None = None, wait_ms: int | None = None
    ) -> Iterator[ExecutionOut]:
        """The execution's state now, then again after every change (server-sent events)."""
        c = call("stream", checked, **_args(locals()))
        try:
            with connect_sse(self._http, "GET", c.path, params=c.params) as source:
                if not source.response.is_success:
                    source.response.read()
                    checked(source.response)
                for message in source.iter_sse():
                    if message.event == "state":
                        yield state_frame(message.data)
        except httpx.TransportError as exc:
            raise ApiConnectionError(str(self._http.base_url), repr(exc)) from exc


def _args(scope: dict[str, Any]) -> dict[str, Any]:
    """A method's own arguments (its ``locals()`` at entry), without ``self``."""
    return {k: v for k, v in scope.items() if k != "self"}
