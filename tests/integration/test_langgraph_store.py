"""``AsyncKafkaStore``: LangGraph's store API on shared-state events, on real servers.

LangGraph does not publish its store test suite, so these are ours: the behaviours
a LangGraph user relies on (get/put/delete, search by namespace prefix and filter,
namespace listing, TTL), plus what only we give: every change is an event in history.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from _langgraph_support import MakeSaverSpec, open_saver

pytest.importorskip(
    "langgraph.store.base", reason="LangGraph is an optional extra: pip install -e '.[langgraph]'"
)


@pytest.fixture
async def store(make_saver_spec: MakeSaverSpec) -> AsyncIterator[Any]:
    from orchestrator.langgraph import AsyncKafkaStore

    async with open_saver(await make_saver_spec(), node_id="store") as saver:
        yield AsyncKafkaStore(saver.runtime)


async def test_put_get_update_delete(store: Any) -> None:
    ns = ("users", "alice", "memories")
    assert await store.aget(ns, "food") is None
    await store.aput(ns, "food", {"likes": "pizza", "n": 1})
    first = await store.aget(ns, "food")
    assert first is not None and first.value == {"likes": "pizza", "n": 1}
    assert first.namespace == ns and first.key == "food"
    await store.aput(ns, "food", {"likes": "sushi", "n": 2})
    second = await store.aget(ns, "food")
    assert second.value == {"likes": "sushi", "n": 2}
    assert second.created_at == first.created_at
    await store.adelete(ns, "food")
    assert await store.aget(ns, "food") is None


async def test_search_by_prefix_and_filter(store: Any) -> None:
    await store.aput(("docs", "a"), "1", {"kind": "note", "score": 3})
    await store.aput(("docs", "a"), "2", {"kind": "todo", "score": 7})
    await store.aput(("docs", "b"), "3", {"kind": "note", "score": 9})
    await store.aput(("docsx",), "4", {"kind": "note", "score": 1})
    found = await store.asearch(("docs",), filter={"kind": "note"})
    assert sorted(i.key for i in found) == ["1", "3"]
    high = await store.asearch(("docs",), filter={"score": {"$gte": 5}})
    assert sorted(i.key for i in high) == ["2", "3"]
    assert [i.key for i in await store.asearch(("docs", "a"), limit=1, offset=0)] in (["1"], ["2"])
    everything = await store.asearch((), limit=10)
    assert sorted(i.key for i in everything) == ["1", "2", "3", "4"]


async def test_list_namespaces(store: Any) -> None:
    for ns in [("a", "b", "c"), ("a", "b", "d"), ("a", "x"), ("z", "b", "c")]:
        await store.aput(ns, "k", {"v": 1})
    assert await store.alist_namespaces(prefix=("a",)) == [
        ("a", "b", "c"),
        ("a", "b", "d"),
        ("a", "x"),
    ]
    assert await store.alist_namespaces(suffix=("c",)) == [("a", "b", "c"), ("z", "b", "c")]
    assert await store.alist_namespaces(prefix=("a",), max_depth=2) == [("a", "b"), ("a", "x")]
    assert await store.alist_namespaces(prefix=("*", "b")) == [
        ("a", "b", "c"),
        ("a", "b", "d"),
        ("z", "b", "c"),
    ]


async def test_an_expired_item_is_not_returned(store: Any) -> None:
    await store.aput(("ttl",), "short", {"v": 1}, ttl=0.001)  # minutes: 60 ms
    await store.aput(("ttl",), "long", {"v": 2}, ttl=60)
    await asyncio.sleep(0.2)
    assert await store.aget(("ttl",), "short") is None
    assert (await store.aget(("ttl",), "long")).value == {"v": 2}
    assert [i.key for i in await store.asearch(("ttl",))] == ["long"]


async def test_every_change_is_an_event_in_history(store: Any) -> None:
    from orchestrator.langgraph.store import shared_namespace

    ns = ("audit",)
    await store.aput(ns, "k", {"v": 1})
    await store.aput(ns, "k", {"v": 2})
    await store.adelete(ns, "k")
    await store.rt.wait_for(store.rt.written())
    rows = await store.rt.pool.fetch(
        f"SELECT event_type, version, outcome FROM {store.rt.read_model.tables.shared_events}"
        ' WHERE namespace = $1 AND name = $2 ORDER BY "offset"',
        shared_namespace(ns),
        "k",
    )
    assert [(r["event_type"], r["version"], r["outcome"]) for r in rows] == [
        ("SharedVariableSet", 1, "applied"),
        ("SharedVariableSet", 2, "applied"),
        ("SharedVariableDeleted", 3, "applied"),
    ]
