"""The state cache and the sync strategies against real Kafka, PostgreSQL and Redis.

Readers and writers in separate processes share L2 (Redis) and L3 (disk); each
strategy has a test that fails if the strategy is weakened: the reader's cache holds
an older value with invalidation off, so only the strategy can make the read right.
"""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest
from _state_stack import Stack, state_stack

from orchestrator.commands.errors import StaleExpectedVersion
from orchestrator.events.envelope import Position
from orchestrator.projections.api import ApiSettings, create_app
from orchestrator.state import StateManager, StateRuntime
from orchestrator.state.cache import CacheConfig, CachePolicy, LevelSpec, scope_of
from orchestrator.state.sync import SESSION_HEADER, SyncPolicy

WORKER = Path(__file__).with_name("_cache_worker.py")
L1 = ("l1", "memory", 10_000_000, 60.0)
L2 = ("l2", "redis", 1_000_000, 3600.0)
L3 = ("l3", "disk", 50_000_000, 86400.0)


@pytest.fixture
def redis_url(redis: str) -> str:
    """The session's Redis (the devstack's); keys here are scoped to each test's database."""
    return redis


@pytest.fixture
async def stack(kafka: Any, postgres: str) -> AsyncIterator[Stack]:
    async with state_stack(kafka, postgres) as s:
        yield s


def cached_runtime(
    stack: Stack,
    node_id: str,
    *,
    levels: tuple[tuple[str, str, int, float], ...] = (L1,),
    strategy: str = "eventual",
    sync_interval: float | None = None,
    on_write: bool = True,
    broadcast: bool = True,
    redis_url: str | None = None,
    cache_dir: Path | None = None,
) -> StateRuntime:
    """A runtime of its own (own cache, own session) on the stack's pool, log and tables."""
    base = stack.runtime.settings
    settings = replace(
        base,
        node_id=node_id,
        sync=SyncPolicy(strategy=strategy, sync_interval=sync_interval),  # type: ignore[arg-type]
        cache=CacheConfig(
            levels=tuple(LevelSpec(name=n, type=t, size=s, ttl=ttl) for n, t, s, ttl in levels),
            policy=CachePolicy(on_write=on_write, broadcast=broadcast),
            redis_url=redis_url,
            directory=cache_dir,
            namespace=scope_of(stack.dsn, stack.projection.name),
        ),
    )
    return StateRuntime(pool=stack.pool, log=stack.log, settings=settings)


async def run_worker(stack: Stack, tmp_path: Path, **spec: Any) -> asyncio.subprocess.Process:
    p = stack.projection
    spec = {
        "dsn": stack.dsn,
        "bootstrap": stack.kafka.bootstrap_servers,
        "idempotence": stack.kafka.supports_idempotence,
        "projection": {
            "name": p.name,
            "pipeline_topic": p.pipeline_topic,
            "shared_topic": p.shared_topic,
        },
        "scope": scope_of(stack.dsn, p.name),
        "namespace": "ns",
        "name": "counter",
        **spec,
    }
    path = tmp_path / f"spec-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(spec))
    return await asyncio.create_subprocess_exec(
        sys.executable, str(WORKER), str(path), stdout=asyncio.subprocess.PIPE
    )


async def lines_of(proc: asyncio.subprocess.Process) -> list[dict[str, Any]]:
    out, _ = await asyncio.wait_for(proc.communicate(), 240)
    assert proc.returncode == 0, out.decode()
    return [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]


async def test_two_reader_processes_never_see_an_older_state_after_a_newer_one(
    stack: Stack, redis_url: str, tmp_path: Path
) -> None:
    writes = 120
    manager = StateManager(stack.runtime)
    await manager.set_variable("ns", "counter", 0)
    readers = [
        await run_worker(
            stack,
            tmp_path,
            mode="read",
            strategy="eventual",
            until=writes + 1,
            levels=[L1, L2, L3],
            redis_url=redis_url,
            cache_dir=str(tmp_path / "l3"),
        )
        for _ in range(2)
    ]
    for proc in readers:  # both are reading before the first write
        assert proc.stdout is not None
        assert json.loads(await asyncio.wait_for(proc.stdout.readline(), 120)) == {"ready": True}
    for i in range(1, writes + 1):
        await manager.set_variable("ns", "counter", i)
        if i % 10 == 0:
            await asyncio.sleep(0.05)  # let readers see intermediate states
    results = [(await lines_of(proc))[-1] for proc in readers]
    for result in results:
        versions = result["versions"]
        assert versions == sorted(versions), versions  # never back in time
        assert versions[-1] == writes + 1  # and the last write was seen
        print("reader saw", len(versions), "states; stats", result["stats"])
    hits = sum(r["stats"]["l1"]["hits"] + r["stats"]["l2"]["hits"] for r in results)
    assert hits > 0


async def test_an_execution_state_is_shared_through_l2_across_runtimes(
    stack: Stack, redis_url: str, tmp_path: Path
) -> None:
    from orchestrator.commands.decide import CreateExecution

    eid = f"exec-{uuid.uuid4().hex[:8]}"
    writer = await stack.runtime.create_execution(
        CreateExecution(execution_id=eid, pipeline_id="p", tasks=["a", "b"])
    )
    await stack.runtime.wait_for([writer.last_position])  # type: ignore[list-item]
    one = cached_runtime(stack, "one", levels=(L1, L2), redis_url=redis_url)
    two = cached_runtime(stack, "two", levels=(L1, L2), redis_url=redis_url)
    async with one, two:
        first = await StateManager(one).get_pipeline_state(eid)
        again = await StateManager(two).get_pipeline_state(eid)
        assert again == first and set(first.tasks) == {"a", "b"}
        assert two.cache.stats()["l2"]["hits"] == 1 and two.cache.stats()["source"]["loads"] == 0
        assert one.cache.hit_rates() == {"l1": 0.0, "l2": 0.0}


async def test_strong_read_right_after_a_write_returns_that_write(stack: Stack) -> None:
    # Invalidation off: only the strategy can keep the cached older value from serving.
    rt = cached_runtime(stack, "strong", strategy="strong", on_write=False, broadcast=False)
    async with rt:
        manager = StateManager(rt)
        await manager.set_variable("ns", "strong", "v1")
        assert (await manager.get_variable("ns", "strong")).value == "v1"  # type: ignore[union-attr]
        await manager.set_variable("ns", "strong", "v2")
        read = await manager.get_variable("ns", "strong")
        assert read is not None and read.value == "v2"
        # The same cache read eventually still holds the older value: what strong prevents.
        await StateManager(stack.runtime).set_variable("ns", "strong", "v3")
        await stack.runtime.wait_for(stack.runtime.written())
        stale = await manager.get_variable("ns", "strong", consistency="eventual")
        assert stale is not None and stale.value == "v2"


async def test_causal_token_from_another_process_is_honoured(stack: Stack, tmp_path: Path) -> None:
    rt = cached_runtime(stack, "causal-b", strategy="causal", on_write=False, broadcast=False)
    async with rt:
        b = StateManager(rt)
        await StateManager(stack.runtime).set_variable("ns", "causal", "old")
        await stack.runtime.wait_for(stack.runtime.written())
        assert (await b.get_variable("ns", "causal")).value == "old"  # type: ignore[union-attr]
        proc = await run_worker(
            stack, tmp_path, mode="write", name="causal", value="new", strategy="causal", levels=[]
        )
        token = (await lines_of(proc))[-1]["token"]
        assert (await b.get_variable("ns", "causal")).value == "old"  # type: ignore[union-attr]
        b.observe(token)  # B now depends on A's write: its cached "old" may not serve
        read = await b.get_variable("ns", "causal")
        assert read is not None and read.value == "new"
        assert Position.parse(token.split(",")[0]).topic == stack.projection.shared_topic


async def test_causal_token_is_honoured_by_the_api_header_in_and_out(stack: Stack) -> None:
    manager = StateManager(stack.runtime, strategy="causal")
    await manager.set_variable("ns", "api", 1)
    token = manager.session_token()
    settings = ApiSettings(
        database_url=stack.dsn, tables=stack.projection.tables, projection=stack.projection.name
    )
    app = create_app(settings)
    transport = httpx.ASGITransport(app=app)
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
            ok = await client.get("/namespaces/ns/variables", headers={SESSION_HEADER: token})
            assert ok.status_code == 200 and ok.json()["variables"]["api"]["value"] == 1
            assert Position.parse(token) in _positions(ok.headers[SESSION_HEADER])
            ahead = Position(stack.projection.shared_topic or "", 0, 10**9).token()
            late = await client.get(
                "/namespaces/ns/variables", headers={SESSION_HEADER: ahead}, params={"wait_ms": 200}
            )
            assert late.status_code == 504  # not applied: refused rather than served stale


def _positions(token: str) -> list[Position]:
    return [Position.parse(t) for t in token.split(",")]


async def test_eventual_read_is_bounded_by_sync_interval(stack: Stack) -> None:
    rt = cached_runtime(stack, "eventual", sync_interval=0.5, on_write=False, broadcast=False)
    async with rt:
        reader = StateManager(rt)
        other = StateManager(stack.runtime)
        await other.set_variable("ns", "lag", "before")
        await stack.runtime.wait_for(stack.runtime.written())
        assert (await reader.get_variable("ns", "lag")).value == "before"  # type: ignore[union-attr]
        await other.set_variable("ns", "lag", "after")
        await stack.runtime.wait_for(stack.runtime.written())
        await asyncio.sleep(0.6)  # older than sync_interval: fetched again
        read = await reader.get_variable("ns", "lag")
        assert read is not None and read.value == "after"


async def test_conflict_resolution_last_write_wins_and_compare_and_set(stack: Stack) -> None:
    a = StateManager(stack.runtime, strategy="strong")
    b = StateManager(stack.runtime, strategy="strong")
    await a.set_variable("ns", "lww", "a0")
    assert (await a.get_variable("ns", "lww")).version == 1  # type: ignore[union-attr]
    assert (await b.get_variable("ns", "lww")).version == 1  # type: ignore[union-attr]
    await a.set_variable("ns", "lww", "a1")
    await b.set_variable("ns", "lww", "b1")  # last_write_wins: overwrites a's write
    assert (await a.get_variable("ns", "lww")).value == "b1"  # type: ignore[union-attr]
    with pytest.raises(StaleExpectedVersion):  # compare-and-set: version 1 is gone
        await a.set_variable("ns", "lww", "a2", expected_version=1)
    reject = StateManager(stack.runtime, strategy="strong", conflict_resolution="reject")
    assert (await reject.get_variable("ns", "lww")).version == 3  # type: ignore[union-attr]
    await a.set_variable("ns", "lww", "a3")
    with pytest.raises(StaleExpectedVersion):  # reject: expects the version it last read
        await reject.set_variable("ns", "lww", "r1")
    assert (await a.get_variable("ns", "lww")).value == "a3"  # type: ignore[union-attr]


async def test_connect_builds_the_configured_levels_and_reads_through_them(
    kafka: Any, make_database: Any, redis_url: str, tmp_path: Path, topic: str
) -> None:
    import orchestrator
    from orchestrator import Pipeline

    config = tmp_path / "orchestrator.yaml"
    config.write_text(
        "state_management:\n  event_store:\n    partitions: 2\n"
        f"    topics:\n      pipeline_events: {topic}.pipeline\n"
        f"      shared_events: {topic}.shared\n"
        f"  snapshots:\n    storage: file://{tmp_path / 'snapshots'}\n"
        "distributed:\n  synchronization:\n    strategy: strong\n"
        "    replication:\n      sync_interval: 1000\n"
        "caching:\n  levels:\n"
        "    l1: {type: memory, size: 10MB, ttl: 60}\n"
        "    l2: {type: redis, size: 1MB, ttl: 3600}\n"
        "    l3: {type: disk, size: 100MB, ttl: 86400}\n"
        "  strategies: {read_through: true, write_through: true, cache_aside: false}\n"
        "  invalidation: {on_write: true, broadcast: true}\n"
    )
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "DATABASE_URL": await make_database(migrated=False),
        "REDIS_URL": redis_url,
        "ORCHESTRATOR_CACHE_DIR": str(tmp_path / "cache"),
    }
    pipeline = Pipeline(f"cache-{uuid.uuid4().hex[:8]}")

    @pipeline.task()
    async def only() -> int:
        return 1

    async with orchestrator.connect(config=config, environ=env, supervise=False) as state:
        result = await state.run(pipeline)
        manager = state.state_manager()
        first = await manager.get_pipeline_state(result.execution_id)
        assert first.status == "completed"
        cache = state.runtime.cache
        assert [level.type for level in cache.levels] == ["memory", "redis", "disk"]
        assert state.runtime.sync.sync_interval == 1.0 and manager.strategy == "strong"
        # The run returns at its append's ack; the NOTIFY of the commit that applied it
        # may drop the key just after the first read stored it: later reads hit L1.
        for _ in range(50):
            again = await manager.get_pipeline_state(result.execution_id)
            assert again.status == "completed"
            if cache.stats()["l1"]["hits"] >= 1:
                break
            await asyncio.sleep(0.1)
        assert cache.stats()["l1"]["hits"] >= 1
    del env["REDIS_URL"]
    with pytest.raises(orchestrator.NotConnected, match="REDIS_URL"):
        async with orchestrator.connect(config=config, environ=env):
            pass


async def test_redis_killed_mid_test_never_serves_a_missed_invalidation(
    stack: Stack, redis_url: str, devstack: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.state.cache import cache as cache_module

    if devstack.redis is None:
        pytest.skip("REDIS_URL names an external Redis: it cannot be killed here")
    monkeypatch.setattr(cache_module, "_RETRY_S", 0.0)
    levels = (("l2", "redis", 1_000_000, 3600.0),)
    writer = StateManager(stack.runtime)
    await writer.set_variable("ns", "killed", "v1")
    await stack.runtime.wait_for(stack.runtime.written())
    a = cached_runtime(stack, "a", levels=levels, redis_url=redis_url)
    b = cached_runtime(stack, "b", levels=levels, redis_url=redis_url)
    async with a, b:
        await a.start_cache(stack.dsn)
        await b.start_cache(stack.dsn)
        assert (await StateManager(a).get_variable("ns", "killed")).value == "v1"  # type: ignore[union-attr]
        await devstack.redis.kill()  # AOF fsync always: the v1 entry survives
        try:
            await writer.set_variable("ns", "killed", "v2")
            await stack.runtime.wait_for(stack.runtime.written())
            for _ in range(100):  # both listeners tried (and failed) to drop the entry
                if a.cache._missed and b.cache._missed:
                    break
                await asyncio.sleep(0.05)
            down = await StateManager(b).get_variable("ns", "killed")
            assert down is not None and down.value == "v2"  # from the read model
        finally:
            await devstack.redis.resume()
        back = await StateManager(b).get_variable("ns", "killed")
        assert back is not None and back.value == "v2"  # the surviving v1 is refused
    c = cached_runtime(stack, "c", levels=levels, redis_url=redis_url)
    async with c:  # a process that never saw the outage: the missed delete was replayed
        fresh = await StateManager(c).get_variable("ns", "killed")
        assert fresh is not None and fresh.value == "v2"
