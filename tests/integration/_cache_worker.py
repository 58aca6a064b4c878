"""A process that reads (or writes) shared state through the state cache.

    python _cache_worker.py SPEC.json

SPEC: ``dsn``, ``bootstrap``, ``idempotence``, ``projection`` (name, pipeline_topic,
shared_topic), ``levels`` (``[[name, type, size, ttl], ...]``), ``redis_url``,
``cache_dir``, ``strategy``, ``sync_interval`` (s), ``broadcast``, ``namespace``,
``name`` and ``mode``:

* ``read``: read the variable until its version reaches ``until`` (eventual reads),
  print ``{"versions": [...], "stats": {...}}``;
* ``write``: set it to ``value``, print ``{"token": <session token>}``;
* ``causal``: observe ``token``, read once, print ``{"version": v, "value": x}``.

It runs no processor: the test process does.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from orchestrator.projections.settings import ProjectionSettings
from orchestrator.state import StateManager, StateRuntime, StateSettings
from orchestrator.state.cache import CacheConfig, CachePolicy, LevelSpec
from orchestrator.state.sync import SyncPolicy


def emit(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


async def main(spec: dict[str, Any]) -> None:
    levels = tuple(LevelSpec(name=n, type=t, size=s, ttl=ttl) for n, t, s, ttl in spec["levels"])
    settings = StateSettings(
        node_id=f"cache-{spec['mode']}",
        projection=ProjectionSettings(**spec["projection"]),
        sync=SyncPolicy(strategy=spec["strategy"], sync_interval=spec.get("sync_interval")),
        cache=CacheConfig(
            levels=levels,
            policy=CachePolicy(broadcast=spec.get("broadcast", True)),
            redis_url=spec.get("redis_url"),
            directory=Path(spec["cache_dir"]) if spec.get("cache_dir") else None,
            namespace=spec["scope"],
        ),
    )
    runtime = await StateRuntime.connect(
        dsn=spec["dsn"],
        bootstrap_servers=spec["bootstrap"],
        settings=settings,
        supports_idempotence=spec["idempotence"],
    )
    async with runtime:
        await runtime.start_cache(spec["dsn"])
        manager = StateManager(runtime)
        ns, name = spec["namespace"], spec["name"]
        if spec["mode"] == "write":
            await manager.set_variable(ns, name, spec["value"])
            emit(token=manager.session_token())
            return
        if spec["mode"] == "causal":
            manager.observe(spec["token"])
            var = await manager.get_variable(ns, name)
            emit(version=None if var is None else var.version, value=var and var.value)
            return
        emit(ready=True)
        versions: list[int] = []
        deadline = time.monotonic() + 150
        while time.monotonic() < deadline:
            var = await manager.get_variable(ns, name)
            if var is not None and (not versions or versions[-1] != var.version):
                versions.append(var.version)
            if var is not None and var.version >= spec["until"]:
                break
            await asyncio.sleep(0)
        emit(versions=versions, stats=runtime.cache.stats())


if __name__ == "__main__":
    asyncio.run(main(json.loads(Path(sys.argv[1]).read_text())))
