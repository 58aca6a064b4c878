"""``AsyncClient``: the query API from async code (httpx.AsyncClient underneath)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, TypeVar

import httpx
from httpx_sse import aconnect_sse

from orchestrator.client._calls import Call, Position, call, checked, reaching
from orchestrator.client._endpoints import Endpoints, Pager, state_frame
from orchestrator.projections import ExecutionOut

T = TypeVar("T")


class AsyncClient(Endpoints[httpx.AsyncBaseTransport]):
    """Every query API endpoint, from async code (what each takes: ``Endpoints``)."""

    _open = httpx.AsyncClient
    _http: httpx.AsyncClient

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
        with reaching(self._http):
            response = await self._http.send(c.request(self._http))
        return c.read(response)

    async def _pages(
        self, pager: Pager[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any] | None
    ) -> AsyncIterator[Any]:
        while kwargs is not None:
            page = await self._send(pager.build(*args, **kwargs))
            for item in page.items:
                yield item
            kwargs = pager.following(page, kwargs)

    async def stream(
        self, execution_id: str, *, position: Position | None = None, wait_ms: int | None = None
    ) -> AsyncIterator[ExecutionOut]:
        """The execution's state now, then again after every change (server-sent events)."""
        c = call("stream", checked, execution_id=execution_id, position=position, wait_ms=wait_ms)
        with reaching(self._http):
            async with aconnect_sse(self._http, "GET", c.path, params=c.params) as source:
                if not source.response.is_success:
                    await source.response.aread()
                    checked(source.response)
                async for message in source.aiter_sse():
                    if message.event == "state":
                        yield state_frame(message.data)
