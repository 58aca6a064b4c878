"""LangGraph's blocking saver API over the async one.

LangGraph calls ``get_tuple``/``put``/``list`` when a graph runs with ``invoke``
rather than ``ainvoke``. As LangGraph's own ``AsyncPostgresSaver`` does, each call
is run on the saver's event loop and waited for from the calling thread; calling
one from that loop's own thread would deadlock, so it is refused with the fix.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterator
from typing import Any, TypeVar

from langgraph.checkpoint.base import CheckpointTuple

T = TypeVar("T")


def _blocking(twin: str) -> Callable[..., Any]:
    """The sync method that waits for the saver's async method ``twin`` (same arguments)."""

    def call(self: BlockingCalls, *args: Any, **kwargs: Any) -> Any:
        return self._wait(getattr(self, twin)(*args, **kwargs))

    call.__name__ = call.__qualname__ = twin.removeprefix("a")
    call.__doc__ = f"``{twin}``, waited for from the calling thread."
    return call


class BlockingCalls:
    """The sync methods of ``BaseCheckpointSaver``, each waiting for its async twin."""

    _loop: asyncio.AbstractEventLoop | None = None

    get_tuple = _blocking("aget_tuple")
    put = _blocking("aput")
    put_writes = _blocking("aput_writes")
    delete_thread = _blocking("adelete_thread")

    def _wait(self, coro: Coroutine[Any, Any, T]) -> T:
        loop = self._loop
        if loop is None or loop.is_closed():
            coro.close()
            raise RuntimeError("the saver is not open: use it inside 'async with' first")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            coro.close()
            raise RuntimeError(
                "a blocking saver call on the saver's own event loop would deadlock: "
                "use the async methods (aput, aget_tuple, alist, ...) or graph.ainvoke"
            )
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    def list(self, *args: Any, **kwargs: Any) -> Iterator[CheckpointTuple]:
        """``alist``'s checkpoints, collected on the saver's loop (``list(config, *,
        filter=None, before=None, limit=None)``)."""

        async def collect() -> list[CheckpointTuple]:
            return [found async for found in self.alist(*args, **kwargs)]  # type: ignore[attr-defined]

        yield from self._wait(collect())
