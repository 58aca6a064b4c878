"""``Client``: the query API from plain (blocking) code; ``AsyncClient``'s mirror."""

from __future__ import annotations

from collections.abc import Iterator
from types import TracebackType
from typing import Any, TypeVar

import httpx
from httpx_sse import connect_sse

from orchestrator.client._calls import Call, Position, call, checked, reaching
from orchestrator.client._endpoints import Endpoints, Pager, state_frame
from orchestrator.projections import ExecutionOut

T = TypeVar("T")


class Client(Endpoints[httpx.BaseTransport]):
    """Every query API endpoint, blocking (what each takes: ``Endpoints``)."""

    _open = httpx.Client
    _http: httpx.Client

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
        with reaching(self._http):
            response = self._http.send(c.request(self._http))
        return c.read(response)

    def _pages(
        self, pager: Pager[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any] | None
    ) -> Iterator[Any]:
        while kwargs is not None:
            page = self._send(pager.build(*args, **kwargs))
            yield from page.items
            kwargs = pager.following(page, kwargs)

    def stream(
        self, execution_id: str, *, position: Position | None = None, wait_ms: int | None = None
    ) -> Iterator[ExecutionOut]:
        """The execution's state now, then again after every change (server-sent events)."""
        c = call("stream", checked, execution_id=execution_id, position=position, wait_ms=wait_ms)
        with reaching(self._http):
            with connect_sse(self._http, "GET", c.path, params=c.params) as source:
                if not source.response.is_success:
                    source.response.read()
                    checked(source.response)
                for message in source.iter_sse():
                    if message.event == "state":
                        yield state_frame(message.data)
