"""``AsyncKafkaSaver`` beyond the conformance suite: large channel values are
claim-checked into S3, and a deleted thread's history stays in the log."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from _langgraph_support import MakeSaverSpec, open_saver

pytest.importorskip(
    "langgraph.checkpoint.base",
    reason="LangGraph is an optional extra: pip install -e '.[langgraph]'",
)


@pytest.fixture
async def saver(make_saver_spec: MakeSaverSpec) -> AsyncIterator[Any]:
    async with open_saver(await make_saver_spec(), node_id="saver") as s:
        await s.setup()
        yield s


def _config(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}


def _checkpoint(values: dict[str, Any]) -> Any:
    from langgraph.checkpoint.base import empty_checkpoint

    cp = empty_checkpoint()
    cp["channel_values"] = values
    cp["channel_versions"] = dict.fromkeys(values, 1)
    return cp


async def _archived(saver: Any, execution_id: str) -> list[tuple[str, Any]]:
    rt = saver.runtime
    rows = await rt.pool.fetch(
        f"SELECT raw, outcome FROM {rt.read_model.tables.execution_events}"
        ' WHERE execution_id = $1 AND sequence IS NOT NULL ORDER BY "offset"',
        execution_id,
    )
    return [(r["outcome"], rt.codec.decode(bytes(r["raw"])).payload) for r in rows]


async def test_a_large_channel_value_is_claim_checked_into_the_blob_store(saver: Any) -> None:
    from orchestrator.events.catalogue import CheckpointSaved

    big = os.urandom(400_000)  # incompressible, above the 256 KiB claim-check threshold
    thread = f"t-{uuid.uuid4().hex[:8]}"
    stored = await saver.aput(_config(thread), _checkpoint({"doc": big}), {}, {"doc": 1})
    found = await saver.aget_tuple(stored)
    assert found is not None and found.checkpoint["channel_values"]["doc"] == big
    [saved] = [
        p
        for _, p in await _archived(saver, f"langgraph:{thread}")
        if isinstance(p, CheckpointSaved)
    ]
    assert saved.data is not None and saved.data.ref is not None
    assert saved.data.ref.uri.startswith("s3://") and saved.data.inline is None


async def test_a_deleted_thread_is_gone_for_langgraph_but_its_history_stays(saver: Any) -> None:
    from orchestrator.events.catalogue import CheckpointSaved, CheckpointsDeleted

    thread = f"t-{uuid.uuid4().hex[:8]}"
    first = await saver.aput(_config(thread), _checkpoint({"n": 1}), {"step": 0}, {"n": 1})
    await saver.aput_writes(first, [("n", 2)], "task-1")
    await saver.adelete_thread(thread)
    assert await saver.aget_tuple(_config(thread)) is None
    assert [t async for t in saver.alist(_config(thread))] == []

    again = await saver.aput(_config(thread), _checkpoint({"n": 3}), {"step": 0}, {"n": 1})
    latest = await saver.aget_tuple(_config(thread))
    assert latest is not None and latest.config == again and latest.pending_writes == []
    kinds = [
        (outcome, type(p).__name__) for outcome, p in await _archived(saver, f"langgraph:{thread}")
    ]
    assert kinds[-4:] == [
        ("applied", CheckpointSaved.__name__),
        ("applied", "CheckpointWritesSaved"),
        ("applied", CheckpointsDeleted.__name__),
        ("applied", CheckpointSaved.__name__),
    ]


async def test_the_blocking_api_works_from_another_thread(saver: Any) -> None:
    import asyncio

    thread = f"t-{uuid.uuid4().hex[:8]}"

    def blocking() -> tuple[Any, Any, list[Any]]:
        stored = saver.put(_config(thread), _checkpoint({"n": 1}), {"step": 0}, {"n": 1})
        saver.put_writes(stored, [("n", 2)], "task-1")
        return stored, saver.get_tuple(_config(thread)), list(saver.list(_config(thread)))

    stored, found, listed = await asyncio.to_thread(blocking)
    with pytest.raises(RuntimeError, match="would deadlock"):
        saver.get_tuple(_config(thread))  # on the saver's own loop

    assert found is not None and found.config == stored
    assert found.pending_writes == [("task-1", "n", 2)]
    assert [t.config for t in listed] == [stored]
