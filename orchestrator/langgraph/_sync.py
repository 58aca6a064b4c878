"""LangGraph's blocking saver API over the async one.

LangGraph calls ``get_tuple``/``put``/``list`` when a graph runs with ``invoke``
rather than ``ainvoke``. As LangGraph's own ``AsyncPostgresSaver`` does, each call
is run on the saver's event loop and waited for from the calling thread; calling
one from that loop's own thread would deadlock, so it is refused with the fix.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator, Sequence
from typing import Any, TypeVar

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
)

T = TypeVar("T")


class BlockingCalls:
    """The sync methods of ``BaseCheckpointSaver``, each waiting for its async twin."""

    _loop: asyncio.AbstractEventLoop | None = None

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

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return self._wait(self.aget_tuple(config))  # type: ignore[attr-defined, no-any-return]

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        async def collect() -> list[CheckpointTuple]:
            listed = self.alist(config, filter=filter, before=before, limit=limit)  # type: ignore[attr-defined]
            return [found async for found in listed]

        yield from self._wait(collect())

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        return self._wait(self.aput(config, checkpoint, metadata, new_versions))  # type: ignore[attr-defined, no-any-return]

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self._wait(self.aput_writes(config, writes, task_id, task_path))  # type: ignore[attr-defined]

    def delete_thread(self, thread_id: str) -> None:
        self._wait(self.adelete_thread(thread_id))  # type: ignore[attr-defined]
