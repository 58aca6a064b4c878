"""``distributed.coordination.backend: etcd`` chosen by configuration: ``connect()``
runs pipelines with execution leases, the seed's ``DistributedLock`` and the recovery
leader on etcd, and none of them in PostgreSQL's ``leases`` table."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from _connect_support import write_config
from _worker import coordination_yaml

import orchestrator
from orchestrator import Pipeline
from orchestrator.commands import EtcdLeaseStore, LockTimeout
from orchestrator.config import ConfigError, load_config
from orchestrator.devstack import EtcdServer
from orchestrator.state import DistributedLock

pytestmark = pytest.mark.integration


async def test_connect_with_etcd_coordination_keeps_every_lease_in_etcd(
    connect_env: dict[str, str], etcd: EtcdServer, tmp_path: Path, topic: str
) -> None:
    env, dsn = connect_env, connect_env["DATABASE_URL"]
    probe = EtcdLeaseStore([etcd.endpoint])
    pipeline = Pipeline(f"etcd-{uuid.uuid4().hex[:8]}")
    seen: dict[str, Any] = {}

    @pipeline.task()
    async def work(context: Any) -> int:
        held = await probe.held("execution:")
        seen["owner"] = [lease for lease in held if lease.name.endswith(context.execution_id)]
        return 7

    coordination = coordination_yaml("etcd", etcd.endpoint)
    config = write_config(tmp_path, topic, partitions=None, extra=coordination)
    try:
        async with orchestrator.connect(config=config, environ=env) as state:
            result = await state.run(pipeline, {})
            assert (result.status, result.result) == ("completed", 7)
            assert len(seen["owner"]) == 1  # the execution's lease was an etcd key
            async with DistributedLock(f"{topic}-resource", ttl=5) as lock:  # the seed's form
                assert (await probe.current(lock.lease_name)) is not None
                with pytest.raises(LockTimeout):
                    await state.lock(f"{topic}-resource", ttl=5, timeout=0.3).acquire()
        conn = await asyncpg.connect(dsn)
        try:
            assert await conn.fetchval("SELECT count(*) FROM leases") == 0
        finally:
            await conn.close()
    finally:
        await probe.close()


@pytest.mark.parametrize(
    ("block", "named"),
    [
        ('backend: "consul"\n    endpoints: ["http://c:8500"]', "consul"),
        ('backend: "zookeeper"\n    endpoints: ["zk:2181"]', "zookeeper"),
        ('backend: "etcd"', "needs endpoints"),
    ],
)
def test_unsupported_or_incomplete_coordination_is_refused_by_name(block: str, named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_config(f"distributed:\n  coordination:\n    {block}\n", "orchestrator.yaml", {})
