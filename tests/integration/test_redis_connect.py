"""``orchestrator.connect()`` with ``state_management.backend: "redis"``.

A pipeline runs; ``StateManager`` reads its execution and task state from Redis
(strong reads wait on the Redis processor's offsets), and so does the query API's
``GET /executions/{id}`` (one with ``position`` waits on, and reads, PostgreSQL).
The execution's hash is deleted mid-run, as a TTL or a lost Redis would: the
processor reloads it from the PostgreSQL read model and folds on, so Redis ends equal
to PostgreSQL. A read after the hash expired is still answered (from PostgreSQL).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
from _connect_support import write_config

import orchestrator
from orchestrator import Pipeline
from orchestrator.app.connect import connect_redis


def _config(tmp_path: Path, topic: str, redis: str, prefix: str) -> Path:
    backend = (
        '  backend: "redis"\n'
        "  config:\n"
        f'    url: "{redis}"\n'
        "    cluster_mode: false\n"
        f'    key_prefix: "{prefix}"\n'
        "    ttl:\n      active_states: 3600\n      completed_states: 86400\n"
        "    persistence:\n      aof_enabled: true\n      snapshot_interval: 300\n"
    )
    return write_config(tmp_path, topic, state=backend)


async def test_state_is_served_from_redis_and_survives_a_lost_hash(
    connect_env: dict[str, str], redis: str, tmp_path: Path, topic: str
) -> None:
    env = connect_env
    pipeline = Pipeline(f"redis-{uuid.uuid4().hex[:8]}")
    gate = asyncio.Event()

    @pipeline.task()
    async def first(context: Any) -> dict[str, int]:
        return {"pages": 3}

    @pipeline.task(depends_on=["first"])
    async def second(first: dict[str, int]) -> int:
        await gate.wait()
        return first["pages"] * 2

    eid = f"exec-{uuid.uuid4().hex[:8]}"
    config = _config(tmp_path, topic, redis, f"t{uuid.uuid4().hex[:6]}:")
    async with orchestrator.connect(config=config, environ=env, api_port=0) as state:
        side = state.app.redis
        assert side is not None and state.runtime.state_reader is side.reader
        store = side.reader.store
        run = asyncio.create_task(state.run(pipeline, {"user": "u1"}, execution_id=eid))
        for _ in range(300):  # until Redis shows `first` completed
            found = await store.load(eid)
            if found is not None and found.entry.state.tasks["first"].status == "completed":
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("Redis never showed the first task completed")
        await store.client.delete(store.keys.execution(eid))  # as an expiry would
        gate.set()
        result = await run
        assert (result.status, result.result) == ("completed", 6)

        manager = state.state_manager()
        seen = await manager.get_pipeline_state(eid, consistency="strong")
        task = await manager.get_task_state(eid, "second", consistency="strong")
        assert (seen.status, task.status, task.outputs) == ("completed", "completed", 6)
        stored = await store.load(eid)
        assert stored is not None, "the processor reloaded the lost execution"
        assert stored.entry.state == seen
        assert stored.entry.state == await state.runtime.read_model.load_execution(eid)

        # Served from Redis: a value only the Redis hash holds shows through.
        key = store.keys.execution(eid)
        pipeline_row = json.loads(await store.client.hget(key, "pipeline"))  # type: ignore[misc]
        pipeline_row["error"] = "only-in-redis"
        await store.client.hset(key, "pipeline", json.dumps(pipeline_row))  # type: ignore[misc]
        assert (await manager.get_pipeline_state(eid)).error == "only-in-redis"
        async with httpx.AsyncClient(base_url=state.app.api_url or "") as api:
            body = (await api.get(f"/executions/{eid}")).json()
            assert (body["status"], body["error"]) == ("completed", "only-in-redis")
            waited = await api.get(f"/executions/{eid}", params={"position": body["position"]})
            assert waited.json()["error"] is None, "a read at a position comes from PostgreSQL"
        # Gone from Redis (expired): still readable, from PostgreSQL.
        await store.client.delete(key)
        assert (await manager.get_pipeline_state(eid)).error is None


def test_connect_redis_builds_the_redis_backend_settings() -> None:
    conn = connect_redis("redis://127.0.0.1:1", key_prefix="x:", ttl_completed=5)
    backend = conn._config.backend()  # type: ignore[union-attr]
    assert (backend.url, backend.key_prefix, backend.ttl.completed_states) == (
        "redis://127.0.0.1:1",
        "x:",
        5,
    )
