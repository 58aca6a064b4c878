"""``AsyncClient``: the query API from async code (httpx.AsyncClient underneath)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar

import httpx
from httpx_sse import aconnect_sse

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


class AsyncClient:
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
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.AsyncClient(
            base_url=base_url, headers=headers, timeout=timeout, transport=transport
        )

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connections."""
        await self._http.aclose()

    async def _send(self, c: Call[T]) -> T:
        try:
            response = await self._http.send(c.request(self._http))
        except httpx.TransportError as exc:
            raise ApiConnectionError(str(self._http.base_url), repr(exc)) from exc
        return c.read(response)

    async def _get(self, name: str, **args: Any) -> Any:
        return await self._send(call(name, READERS[name], **args))

    async def _pages(
        self, fetch: Any, cursor: str, next_field: str, args: dict[str, Any]
    ) -> AsyncIterator[Any]:
        """Every item of a paged listing: ``fetch`` again with ``next_field`` as ``cursor``."""
        args = dict(args)
        while True:
            page = await fetch(**args)
            for item in page.items:
                yield item
            args[cursor] = getattr(page, next_field)
            if args[cursor] is None:
                return

    async def executions_page(
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
        page: ExecutionPage = await self._get("executions", **_args(locals()))
        return page

    async def executions(self, **filters: Any) -> AsyncIterator[ExecutionSummary]:
        """Every execution matching ``filters`` (as ``executions_page``), page after page."""
        async for item in self._pages(self.executions_page, "cursor", "next_cursor", filters):
            yield item

    async def execution(
        self, execution_id: str, *, position: Position | None = None, wait_ms: int | None = None
    ) -> ExecutionOut:
        """One execution's pipeline state."""
        out: ExecutionOut = await self._get("execution", **_args(locals()))
        return out

    async def tasks(
        self, execution_id: str, *, position: Position | None = None, wait_ms: int | None = None
    ) -> TaskList:
        """Every task of an execution."""
        out: TaskList = await self._get("tasks", **_args(locals()))
        return out

    async def checkpoints_page(
        self,
        execution_id: str,
        *,
        after: int | None = None,
        limit: int | None = None,
        position: Position | None = None,
        wait_ms: int | None = None,
    ) -> CheckpointList:
        """One page of an execution's checkpoints, oldest first."""
        page: CheckpointList = await self._get("checkpoints", **_args(locals()))
        return page

    async def checkpoints(self, execution_id: str, **options: Any) -> AsyncIterator[CheckpointOut]:
        """Every checkpoint of an execution, page after page."""
        options["execution_id"] = execution_id
        page = self.checkpoints_page
        async for item in self._pages(page, "after", "next_after", options):
            yield item

    async def events_page(
        self,
        execution_id: str,
        *,
        after: int | None = None,
        limit: int | None = None,
        position: Position | None = None,
        wait_ms: int | None = None,
    ) -> EventPage:
        """One page of an execution's archived events, in log order."""
        page: EventPage = await self._get("events", **_args(locals()))
        return page

    async def events(self, execution_id: str, **options: Any) -> AsyncIterator[EventOut]:
        """Every archived event of an execution, page after page."""
        options["execution_id"] = execution_id
        page = self.events_page
        async for item in self._pages(page, "after", "next_after", options):
            yield item

    async def variables(
        self, namespace: str, *, position: Position | None = None, wait_ms: int | None = None
    ) -> NamespaceOut:
        """A shared-state namespace and its variables."""
        out: NamespaceOut = await self._get("variables", **_args(locals()))
        return out

    async def state(
        self,
        execution_id: str,
        *,
        at: int | None = None,
        position: Position | None = None,
        wait_ms: int | None = None,
    ) -> dict[str, Any]:
        """The execution's state after the event at sequence ``at`` (default: latest)."""
        out: dict[str, Any] = await self._get("state", **_args(locals()))
        return out

    async def timeline(
        self, execution_id: str, *, position: Position | None = None, wait_ms: int | None = None
    ) -> dict[str, Any]:
        """The data behind the timeline page."""
        out: dict[str, Any] = await self._get("timeline", **_args(locals()))
        return out

    async def timeline_html(self, execution_id: str) -> str:
        """The timeline page's HTML."""
        out: str = await self._get("timeline_html", execution_id=execution_id)
        return out

    async def metrics(self) -> str:
        """The API process's Prometheus metrics, as text."""
        out: str = await self._get("metrics")
        return out

    async def health(self) -> HealthOut:
        """Whether the API reaches its database."""
        out: HealthOut = await self._get("health")
        return out

    async def stream(
        self, execution_id: str, *, position: Position | None = None, wait_ms: int | None = None
    ) -> AsyncIterator[ExecutionOut]:
        """The execution's state now, then again after every change (server-sent events)."""
        c = call("stream", checked, **_args(locals()))
        try:
            async with aconnect_sse(self._http, "GET", c.path, params=c.params) as source:
                if not source.response.is_success:
                    await source.response.aread()
                    checked(source.response)
                async for message in source.aiter_sse():
                    if message.event == "state":
                        yield state_frame(message.data)
        except httpx.TransportError as exc:
            raise ApiConnectionError(str(self._http.base_url), repr(exc)) from exc


def _args(scope: dict[str, Any]) -> dict[str, Any]:
    """A method's own arguments (its ``locals()`` at entry), without ``self``."""
    return {k: v for k, v in scope.items() if k != "self"}
