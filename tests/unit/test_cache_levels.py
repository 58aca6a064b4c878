"""The state cache's rules without servers: versions only go forward, a read's need
(positions, age) decides which entry may serve it, L1's byte bound, the sync policy."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from orchestrator.events.envelope import Position, parse_session, session_token
from orchestrator.events.state import NamespaceState, SharedVariable
from orchestrator.state.cache import NAMESPACE, Cached, CachePolicy, MemoryLevel, StateCache
from orchestrator.state.cache._disk import DiskLevel
from orchestrator.state.sync import ReadNeed, Session, SyncPolicy

T = "orchestrator.shared.events"


def ns(version: int) -> NamespaceState:
    var = SharedVariable(name="x", type="int", value=version, version=version)
    return NamespaceState(namespace="n", variables={"x": var})


class Source:
    """The read model's latest value of namespace ``n``, at watermark ``applied``."""

    def __init__(self) -> None:
        self.version = 1
        self.applied = 1
        self.waited: list[Position] = []

    async def wait(self, positions: Sequence[Position]) -> None:
        self.waited.extend(positions)
        self.applied = max([self.applied, *(p.offset + 1 for p in positions)])

    async def load(self, kind: Any, key: str) -> Cached[Any] | None:
        marks = {(T, 0): self.applied}
        refl = (Position(T, 0, self.applied - 1),)
        return Cached(ns(self.version), self.version, marks, refl, time.time(), 100)


def entry(version: int, applied: int, fetched_at: float | None = None) -> Cached[Any]:
    at = time.time() if fetched_at is None else fetched_at
    return Cached(ns(version), version, {(T, 0): applied}, (), at, 100)


async def test_a_read_through_miss_fills_l1_and_the_next_read_hits() -> None:
    l1 = MemoryLevel(name="l1", size=10_000, ttl=60)
    cache = StateCache([l1], Source())
    first = await cache.read(NAMESPACE, "n", ReadNeed())
    second = await cache.read(NAMESPACE, "n", ReadNeed())
    assert first is not None and second is first
    assert cache.stats()["l1"]["hits"] == 1 and cache.stats()["l1"]["misses"] == 1
    assert cache.hit_rates() == {"l1": 0.5}


async def test_without_read_through_or_cache_aside_a_miss_is_not_stored() -> None:
    l1 = MemoryLevel(name="l1", size=10_000, ttl=60)
    cache = StateCache([l1], Source(), CachePolicy(read_through=False, cache_aside=False))
    await cache.read(NAMESPACE, "n", ReadNeed())
    assert len(l1) == 0


async def test_an_entry_older_than_the_newest_returned_is_never_served() -> None:
    l1 = MemoryLevel(name="l1", size=10_000, ttl=60)
    source = Source()
    source.version = 5
    cache = StateCache([l1], source)
    assert (await cache.read(NAMESPACE, "n", ReadNeed())).version == 5  # type: ignore[union-attr]
    l1.store(NAMESPACE, "n", entry(3, 1))  # refused: a newer version is held
    await cache.invalidate([(NAMESPACE.name, "n")])
    l1.store(NAMESPACE, "n", entry(3, 1))  # an older state reaches the level again
    got = await cache.read(NAMESPACE, "n", ReadNeed())
    assert got is not None and got.version == 5
    assert cache.stats()["l1"]["stale"] == 1


async def test_a_need_for_a_position_refuses_an_entry_read_before_it_and_waits() -> None:
    l1 = MemoryLevel(name="l1", size=10_000, ttl=60)
    source = Source()
    cache = StateCache([l1], source)
    l1.store(NAMESPACE, "n", entry(1, 4))  # read when offsets < 4 were applied
    ok = await cache.read(NAMESPACE, "n", ReadNeed((Position(T, 0, 3),)))
    assert ok is not None and source.waited == []
    source.version = 2
    need = ReadNeed((Position(T, 0, 9),))
    got = await cache.read(NAMESPACE, "n", need)
    assert got is not None and got.version == 2 and source.waited == [Position(T, 0, 9)]


async def test_max_age_refetches_an_entry_older_than_sync_interval() -> None:
    l1 = MemoryLevel(name="l1", size=10_000, ttl=60)
    source = Source()
    cache = StateCache([l1], source)
    l1.store(NAMESPACE, "n", entry(1, 1, fetched_at=time.time() - 5))
    source.version = 2
    fresh = await cache.read(NAMESPACE, "n", ReadNeed(max_age=1.0))
    assert fresh is not None and fresh.version == 2


async def test_a_causal_session_learns_what_it_read() -> None:
    cache = StateCache([], Source())
    session = Session()
    await cache.read(NAMESPACE, "n", ReadNeed(session=session))
    assert session.positions() == [Position(T, 0, 0)]


async def test_own_write_makes_older_entries_unusable_in_this_process() -> None:
    l1 = MemoryLevel(name="l1", size=10_000, ttl=60)
    source = Source()
    cache = StateCache([l1], source)
    await cache.read(NAMESPACE, "n", ReadNeed())
    await cache.wrote(NAMESPACE, "n", Position(T, 0, 7))
    l1.store(NAMESPACE, "n", entry(1, 1))  # e.g. a late fill by another reader
    source.applied, source.version = 8, 2
    got = await cache.read(NAMESPACE, "n", ReadNeed())
    assert got is not None and got.version == 2 and source.waited == []


def test_l1_evicts_least_recently_used_by_bytes_and_expires_by_ttl() -> None:
    l1 = MemoryLevel(name="l1", size=250, ttl=60)
    for key in ("a", "b"):
        l1.store(NAMESPACE, key, entry(1, 1))
    l1.peek(NAMESPACE, "a")
    l1.store(NAMESPACE, "c", entry(1, 1))
    assert [l1.peek(NAMESPACE, k) is not None for k in "abc"] == [True, False, True]
    assert l1.bytes_used == 200
    short = MemoryLevel(name="l1", size=250, ttl=0.001)
    short.store(NAMESPACE, "a", entry(1, 1))
    time.sleep(0.01)
    assert short.peek(NAMESPACE, "a") is None


async def test_disk_level_keeps_the_newer_version_and_refuses_pickles(tmp_path: Path) -> None:
    import diskcache

    level = DiskLevel(name="l3", directory=tmp_path, size=10**6, ttl=60, prefix="p:")
    await level.put(NAMESPACE, "n", entry(4, 1))
    await level.put(NAMESPACE, "n", entry(2, 1))
    got = await level.get(NAMESPACE, "n", lambda _h: True)
    assert got is not None and got.version == 4 and got.value == ns(4)
    await level.close()
    with diskcache.Cache(str(tmp_path)) as raw:  # a pickled value planted in the directory
        raw.set("p:namespace:evil", {"not": "bytes"})
    level = DiskLevel(name="l3", directory=tmp_path, size=10**6, ttl=60, prefix="p:")
    assert await level.get(NAMESPACE, "evil", lambda _h: True) is None
    await level.close()


def test_sync_policy_needs() -> None:
    mine, other = Position(T, 0, 5), Position(T, 1, 9)
    policy = SyncPolicy(strategy="eventual", sync_interval=1.0)
    assert policy.need().positions == () and policy.need().max_age == 1.0
    strong = policy.need("strong", process_writes=[mine, other])
    assert strong.positions == (mine, other) and strong.max_age is None
    session = Session()
    session.observe(session_token([other]))
    causal = policy.need("causal", own_writes=[mine], session=session)
    assert causal.positions == (mine, other)
    assert policy.need("eventual", position=session.token()).positions == (mine, other)
    with pytest.raises(ValueError, match="consistency"):
        policy.need("linearizable")  # type: ignore[arg-type]


def test_session_tokens_round_trip_and_keep_the_newest_per_partition() -> None:
    token = session_token([Position(T, 0, 5), Position(T, 0, 3), Position("a:b", 2, 1)])
    assert token == "a:b:2:1,orchestrator.shared.events:0:5"
    assert parse_session(token) == [Position("a:b", 2, 1), Position(T, 0, 5)]
    with pytest.raises(ValueError, match="malformed"):
        parse_session("nope")


def test_execution_states_round_trip_through_the_shared_levels_codec() -> None:
    import datetime as dt

    from orchestrator.events.state import CheckpointRef, ExecutionState, TaskState
    from orchestrator.state.cache import EXECUTION

    now = dt.datetime(2026, 12, 3, 9, 30, tzinfo=dt.UTC)
    task = TaskState(
        task_id="a",
        status="completed",
        attempts=2,
        depends_on=("z",),
        started_at=now,
        completed_at=now,
        inputs={"q": [1, 2.5, None]},
        outputs={"$blob": {"uri": "s3://b/k", "sha256": "00", "size": 9}},
        execution_details={"node": "n1"},
        retryable=True,
        retry_delay_seconds=1.5,
    )
    cp = CheckpointRef(
        checkpoint_id="c1", name="x", task_id="a", timestamp=now, sequence=3, progress=0.5
    )
    state = ExecutionState(
        execution_id="e",
        pipeline_id="p",
        status="running",
        epoch=2,
        last_sequence=7,
        created_at=now,
        completed_tasks=("a",),
        pending_tasks=("b",),
        context={"k": {"nested": True}},
        checkpoints=(cp,),
        tasks={"a": task, "b": TaskState(task_id="b")},
        outputs=[1, "two"],
    )
    assert EXECUTION.decode(EXECUTION.encode(state)) == state


async def test_every_lookup_reaches_the_metrics_hook() -> None:
    seen: list[tuple[str, bool]] = []
    cache = StateCache([MemoryLevel(name="l1", size=10_000, ttl=60)], Source())
    cache.on_lookup = lambda level, hit: seen.append((level, hit))
    await cache.read(NAMESPACE, "n", ReadNeed())
    await cache.read(NAMESPACE, "n", ReadNeed())
    assert seen == [("l1", False), ("l1", True)]


class Flaky(MemoryLevel):
    """A shared level whose server can go away (``down``)."""

    down = False

    async def get(self, kind: Any, key: str, accept: Any) -> Cached[Any] | None:
        if self.down:
            raise ConnectionError("connection refused")
        return await super().get(kind, key, accept)

    async def delete(self, keys: Any) -> None:
        if self.down:
            raise ConnectionError("connection refused")
        await super().delete(keys)

    async def put(self, kind: Any, key: str, entry: Cached[Any]) -> None:
        if self.down:
            raise ConnectionError("connection refused")
        await super().put(kind, key, entry)


async def test_a_level_that_fails_is_skipped_logged_once_and_distrusted_after(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.state.cache import cache as cache_module

    monkeypatch.setattr(cache_module, "_RETRY_S", 0.0)
    l2 = Flaky(name="l2", size=10_000, ttl=60)
    source = Source()
    cache = StateCache([l2], source)
    await cache.read(NAMESPACE, "n", ReadNeed())  # stored in l2 at version 1
    l2.down = True
    source.version = 2
    for _ in range(3):
        got = await cache.read(NAMESPACE, "n", ReadNeed())
        assert got is not None and got.version == 2  # served from the read model
    await cache.invalidate([(NAMESPACE.name, "n")])  # missed by the level
    l2.down = False
    l2.store(NAMESPACE, "n", entry(2, 1, fetched_at=time.time() - 10))  # from before
    got = await cache.read(NAMESPACE, "n", ReadNeed())
    assert got is not None and source.version == 2
    assert cache.stats()["l2"]["stale"] >= 1
    lines = [r.getMessage() for r in caplog.records if "cache l2" in r.getMessage()]
    assert len([m for m in lines if "unavailable" in m]) == 1
    assert len([m for m in lines if "available again" in m]) == 1


class SlowPut(MemoryLevel):
    """A shared level whose put is still in flight when a delete from another connection
    runs first: the server then applies the put after the delete."""

    putting: asyncio.Event
    release: asyncio.Event

    async def put(self, kind: Any, key: str, entry: Cached[Any]) -> None:
        self.putting.set()
        await self.release.wait()
        await super().put(kind, key, entry)


@pytest.mark.parametrize("copy_up", [False, True])
async def test_an_invalidation_during_a_fill_leaves_no_stale_entry(copy_up: bool) -> None:
    l1 = SlowPut(name="l1", size=10_000, ttl=60)
    l2 = MemoryLevel(name="l2", size=10_000, ttl=60)
    l1.putting, l1.release = asyncio.Event(), asyncio.Event()
    source = Source()
    cache = StateCache([l1, l2] if copy_up else [l1], source)
    if copy_up:  # the value is found in l2 and copied up into l1
        l2.store(NAMESPACE, "n", entry(1, 1))
    reading = asyncio.ensure_future(cache.read(NAMESPACE, "n", ReadNeed()))
    await l1.putting.wait()
    source.version = 2  # the log applies version 2 and its NOTIFY drops the key
    await cache.invalidate([(NAMESPACE.name, "n")])
    l1.release.set()
    got = await reading
    assert got is not None and got.version == 1  # read before the change: fine to return
    assert l1.peek(NAMESPACE, "n") is None  # but not kept past the invalidation
    again = await cache.read(NAMESPACE, "n", ReadNeed())
    assert again is not None and again.version == 2


async def test_a_value_missing_what_a_notify_applied_is_refused_from_a_shared_level() -> None:
    # Another process's load raced the invalidation and stored its older value in the
    # shared level after the delete: the NOTIFY's position makes it unusable here.
    l2 = MemoryLevel(name="l2", size=10_000, ttl=3600)
    source = Source()
    cache = StateCache([l2], source)
    key = (NAMESPACE.name, "n")
    source.version, source.applied = 2, 5
    await cache.applied([key], {key: Position(T, 0, 4)})
    l2.store(NAMESPACE, "n", entry(1, 4))  # read when offset 4 was not applied yet
    got = await cache.read(NAMESPACE, "n", ReadNeed())
    assert got is not None and got.version == 2
    assert cache.stats()["l2"]["stale"] == 1
    assert (await cache.read(NAMESPACE, "n", ReadNeed())) is got  # the new value is kept


def test_notify_payloads_count_bytes_of_non_ascii_keys() -> None:
    """The limit is PostgreSQL's, in bytes: keys of multi-byte characters (and one the
    fast encoder refuses, a lone surrogate) still give payloads under it, read back whole."""
    from orchestrator.projections import parse_changes
    from orchestrator.projections.store import notify_payloads

    changes = {f"exécution-✓-{i:05d}": ("pipeline.events", i % 8, i) for i in range(1_000)}
    changes["lone-\ud800"] = ("pipeline.events", 0, 1)
    payloads = notify_payloads(changes)
    assert len(payloads) > 1 and all(len(p.encode()) < 8000 for p in payloads)
    assert all(7000 < len(p.encode()) for p in payloads[:-1])  # chunks are filled, not split early
    parsed: dict[str, Any] = {}
    for payload in payloads:
        parsed.update(parse_changes(payload))
    assert parsed == changes
    assert notify_payloads(["b", "a"]) == ['["a","b"]']


def test_notify_payloads_carry_each_key_s_position_and_stay_under_the_limit() -> None:
    from orchestrator.projections import parse_changes
    from orchestrator.projections.store import notify_payloads

    changes = {f"exec-{i:05d}": ("pipeline.events", i % 8, i) for i in range(2_000)}
    payloads = notify_payloads(changes)
    assert len(payloads) > 1 and all(len(p.encode()) < 8000 for p in payloads)
    parsed: dict[str, Any] = {}
    for payload in payloads:
        parsed.update(parse_changes(payload))
    assert parsed == changes
    assert parse_changes('["a", "b"]') == {"a": None, "b": None}  # an older processor
    for bad in ('{"a": [1, 2]}', '"a"', "[1]", '{"a": ["t", 0, "7"]}'):
        with pytest.raises(ValueError):
            parse_changes(bad)
