"""Encryption of user data end to end, on real Kafka, PostgreSQL and S3 (SeaweedFS).

With ``checkpointing.storage.encrypt: true`` a run's checkpoint data, task inputs and
outputs, context, shared variable and a claim-checked blob are sealed with the
execution's data key: a scan of the raw Kafka records, every PostgreSQL table and every
S3 object finds none of them, while the API and the StateManager read them back. Data
written with encryption off reads with it on, and the reverse. ``executions erase``
deletes one execution's key: its data reads as erased everywhere, another execution's
stays intact, and the processor keeps folding.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from _databases import MakeDatabase
from aiokafka import AIOKafkaConsumer
from typer.testing import CliRunner

from orchestrator.app import App, AppOptions, AppPlan, plan_app
from orchestrator.cli import app as cli_app
from orchestrator.config import load_config
from orchestrator.devstack import ServiceEndpoints
from orchestrator.events.crypto import UserDataErased
from orchestrator.events.keys import KEYS_ENV, KeyConfigError, generate_key
from orchestrator.runtime import Pipeline
from orchestrator.state import checkpoint

pytestmark = pytest.mark.timeout(240)


def _config(bucket: str, prefix: str, topics: str, *, encrypt: bool) -> str:
    return f"""
state_management:
  backend: "s3"
  config:
    bucket: "{bucket}"
    prefix: "{prefix}/states/"
  event_store:
    topics:
      pipeline_events: "{topics}.pipeline.events"
      shared_events: "{topics}.shared.events"
  snapshots:
    frequency: 3
checkpointing:
  storage:
    encrypt: {"true" if encrypt else "false"}
"""


def _pipeline(name: str, tokens: dict[str, str]) -> Pipeline:
    pipeline = Pipeline(name)
    noise = base64.b64encode(os.urandom(300_000)).decode()  # claim-checked (> 256 KiB)

    @pipeline.task()
    async def fetch() -> dict[str, str]:
        await checkpoint.save("halfway", {"note": tokens["checkpoint"], "progress": 0.5})
        return {"doc": tokens["output"], "big": tokens["blob"] + noise}

    @pipeline.task(depends_on=["fetch"])
    async def summarize(fetch: dict[str, str]) -> str:
        return fetch["doc"] + "/summary"

    return pipeline


def _tokens(label: str) -> dict[str, str]:
    run = uuid.uuid4().hex[:10]
    kinds = ("checkpoint", "output", "blob", "context", "variable")
    return {kind: f"quokka-{label}-{kind}-{run}" for kind in kinds}


class _Stack:
    def __init__(self, services: ServiceEndpoints, dsn: str, tmp_path: Path) -> None:
        uid = uuid.uuid4().hex[:8]
        self.services, self.dsn, self.tmp_path = services, dsn, tmp_path
        self.bucket = services.s3_bucket or ""
        self.prefix, self.topics = f"enc-{uid}", f"test-enc-{uid}"
        self.projection = f"rm_{uid}"

    def plan(self, *, encrypt: bool) -> tuple[AppPlan, Any]:
        text = _config(self.bucket, self.prefix, self.topics, encrypt=encrypt)
        settings = load_config(text).settings
        plan = plan_app(
            settings,
            bootstrap=self.services.kafka_bootstrap,
            dsn=self.dsn,
            node_id=f"enc-{uuid.uuid4().hex[:6]}",
            supports_idempotence=self.services.kafka_supports_idempotence,
            data_dir=self.tmp_path,
            s3_endpoint=self.services.s3_endpoint_url,
            max_replication=1,
            projection_name=self.projection,
        )
        return plan, settings

    @asynccontextmanager
    async def app(self, *, encrypt: bool, api: bool = False) -> AsyncIterator[App]:
        plan, settings = self.plan(encrypt=encrypt)
        options = AppOptions(join_recovery=False, supervise=False, api_port=0 if api else None)
        async with App(plan, settings, options, endpoints=self.services) as app:
            yield app

    async def kafka_values(self) -> list[bytes]:
        consumer = AIOKafkaConsumer(
            f"{self.topics}.pipeline.events",
            f"{self.topics}.shared.events",
            bootstrap_servers=self.services.kafka_bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
        )
        await consumer.start()
        out: list[bytes] = []
        try:
            while True:
                batch = await consumer.getmany(timeout_ms=2000)
                if not batch:
                    return out
                for records in batch.values():
                    out += [(r.key or b"") + b"|" + (r.value or b"") for r in records]
        finally:
            await consumer.stop()

    async def table_dump(self) -> str:
        conn = await asyncpg.connect(self.dsn)
        try:
            tables = await conn.fetch(
                "SELECT schemaname, tablename FROM pg_tables"
                " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
            )
            parts = []
            for t in tables:
                name = f'"{t["schemaname"]}"."{t["tablename"]}"'
                rows = await conn.fetch(f"SELECT t::text AS row FROM {name} t")
                parts += [name] + [r["row"] for r in rows]
            return "\n".join(parts)
        finally:
            await conn.close()

    def s3_objects(self) -> dict[str, bytes]:
        client = self.services_client()
        listed = client.list_objects_v2(Bucket=self.bucket, Prefix=self.prefix + "/")
        return {
            o["Key"]: client.get_object(Bucket=self.bucket, Key=o["Key"])["Body"].read()
            for o in listed.get("Contents", [])
        }

    def services_client(self) -> Any:
        import boto3

        s = self.services
        return boto3.client(
            "s3",
            endpoint_url=s.s3_endpoint_url,
            region_name=s.s3_region or "us-east-1",
            aws_access_key_id=s.s3_access_key,
            aws_secret_access_key=s.s3_secret_key,
        )


def _found(tokens: dict[str, str], haystack: bytes | str) -> list[str]:
    data = haystack.encode() if isinstance(haystack, str) else haystack
    return [kind for kind, token in tokens.items() if token.encode() in data]


async def _snapshots_of(dsn: str, execution_id: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        n: int = await conn.fetchval(
            "SELECT count(*) FROM snapshots WHERE execution_id = $1", execution_id
        )
        return n
    finally:
        await conn.close()


async def _halfway(execution_id: str) -> Any:
    listed = await checkpoint.list(execution_id=execution_id)
    return next(info for info in listed if info.name == "halfway")


async def _cli(*args: str) -> Any:
    runner = CliRunner()
    return await asyncio.to_thread(runner.invoke, cli_app, list(args))


async def test_encrypted_runs_leave_no_plaintext_and_erase_shreds_one_execution(
    services: ServiceEndpoints,
    make_database: MakeDatabase,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(KEYS_ENV, raising=False)
    stack = _Stack(services, await make_database(migrated=False), tmp_path)
    with pytest.raises(KeyConfigError, match=KEYS_ENV):  # encryption on, no key ring
        async with stack.app(encrypt=True):
            pass
    monkeypatch.setenv(KEYS_ENV, f"m1:{generate_key()}")

    plain = _tokens("plain")  # written with encryption off: found in the scans (control)
    async with stack.app(encrypt=False) as app:
        assert app.orchestrator is not None
        x = await app.orchestrator.run_pipeline(
            _pipeline("enc_plain", plain), {"input_data": {"q": plain["context"]}}
        )

    a, b = _tokens("a"), _tokens("b")
    async with stack.app(encrypt=True, api=True) as app:
        assert app.orchestrator is not None and app.api_url is not None
        manager = app.state_manager()
        run_a = await app.orchestrator.run_pipeline(
            _pipeline("enc_a", a), {"input_data": {"q": a["context"]}}
        )
        run_b = await app.orchestrator.run_pipeline(
            _pipeline("enc_b", b), {"input_data": {"q": b["context"]}}
        )
        await manager.set_variable(f"ns-{stack.prefix}", "secret", a["variable"])
        await manager.set_variable(f"ns-{stack.prefix}", "other", b["variable"])
        assert run_a.result == a["output"] + "/summary"

        # Data written with encryption off still reads with it on.
        task = await manager.get_task_state(x.execution_id, "fetch", consistency="strong")
        assert task.outputs["doc"] == plain["output"]

        # Everything reads back in plaintext for the user ...
        task = await manager.get_task_state(run_a.execution_id, "fetch", consistency="strong")
        assert task.outputs["doc"] == a["output"] and task.outputs["big"].startswith(a["blob"])
        variable = await manager.get_variable(f"ns-{stack.prefix}", "secret")
        assert variable is not None and variable.value == a["variable"]
        saved_a = await _halfway(run_a.execution_id)
        saved_b = await _halfway(run_b.execution_id)
        assert (await checkpoint.restore(saved_a.id)).data["note"] == a["checkpoint"]
        async with httpx.AsyncClient(base_url=app.api_url) as http:
            tasks = (await http.get(f"/executions/{run_a.execution_id}/tasks")).json()
            assert a["output"] in json.dumps(tasks)

        # ... and nowhere at rest: Kafka records, PostgreSQL rows, S3 objects.
        for run in (run_a, run_b):
            for _ in range(100):
                if await _snapshots_of(stack.dsn, run.execution_id):
                    break
                await asyncio.sleep(0.2)
            assert await _snapshots_of(stack.dsn, run.execution_id) > 0
        kafka = await stack.kafka_values()
        dump = await stack.table_dump()
        objects = stack.s3_objects()
        assert any(key.endswith(".snap") or "/states/" in key for key in objects)
        assert any("/blobs/" in key for key in objects)
        for tokens in (a, b):
            assert [k for v in kafka for k in _found(tokens, v)] == []
            assert _found(tokens, dump) == []
            assert {k: _found(tokens, v) for k, v in objects.items() if _found(tokens, v)} == {}
        assert "output" in _found(plain, dump)  # the scan sees plaintext where there is some
        assert any(_found(plain, v) for v in kafka)

        # Crypto-shredding execution A.
        erased = await _cli(
            "executions", "erase", run_a.execution_id, "--yes", "--database-url", stack.dsn
        )
        assert erased.exit_code == 0, erased.output
        assert "erased execution" in erased.output
        with pytest.raises(UserDataErased):
            await manager.get_task_state(run_a.execution_id, "fetch")
        with pytest.raises(UserDataErased):
            await checkpoint.restore(saved_a.id)
        async with httpx.AsyncClient(base_url=app.api_url) as http:
            gone = await http.get(f"/executions/{run_a.execution_id}/tasks")
            assert gone.status_code == 410 and gone.json()["type"].endswith(":erased")
            assert (await http.get(f"/executions/{run_a.execution_id}")).status_code == 410
            kept = (await http.get(f"/executions/{run_b.execution_id}/tasks")).json()
            assert b["output"] in json.dumps(kept)
        # B is intact; the processor still folds (a new run completes and reads back).
        task = await manager.get_task_state(run_b.execution_id, "fetch")
        assert task.outputs["doc"] == b["output"]
        assert (await checkpoint.restore(saved_b.id)).data["note"] == b["checkpoint"]
        c = _tokens("c")
        run_c = await app.orchestrator.run_pipeline(_pipeline("enc_c", c))
        state = await manager.get_pipeline_state(run_c.execution_id, consistency="strong")
        assert state.status == "completed"
        state_a = await manager.get_pipeline_state(run_a.execution_id)
        assert state_a.status == "completed"  # statuses and history stay; data is gone
        assert all(not task.done() for task in app._tasks.values())

        common = [
            "--database-url",
            stack.dsn,
            "--projection",
            stack.projection,
            "--bootstrap-servers",
            services.kafka_bootstrap or "",
        ]
        check = await _cli(
            "check", "--json", *common, "--pipeline-topic", f"{stack.topics}.pipeline.events"
        )
        assert check.exit_code == 0, check.output
        for name, value in services.as_env().items():  # the CLI reads snapshots from S3
            monkeypatch.setenv(name, value)
        replay = await _cli("replay", run_a.execution_id, "--json", *common)
        assert replay.exit_code == 0, replay.output
        assert _found(a, replay.output) == []
        assert f'"$erased": "{run_a.execution_id}"' in replay.output

    # Key rotation: a new active master key, every data key re-wrapped, the old one gone.
    old = os.environ[KEYS_ENV]
    monkeypatch.setenv(KEYS_ENV, f"{old},m2:{generate_key()}")
    rewrapped = await _cli("executions", "rewrap-keys", "--database-url", stack.dsn)
    assert rewrapped.exit_code == 0, rewrapped.output
    assert "with master key 'm2'" in rewrapped.output
    monkeypatch.setenv(KEYS_ENV, os.environ[KEYS_ENV].removeprefix(old + ","))

    # Data written with encryption on reads with it off (the key ring is still set).
    async with stack.app(encrypt=False) as app:
        manager = app.state_manager()
        task = await manager.get_task_state(run_b.execution_id, "fetch", consistency="strong")
        assert task.outputs["doc"] == b["output"]
        with pytest.raises(UserDataErased):
            await manager.get_task_state(run_a.execution_id, "fetch")
