"""``backup`` and ``restore-backup`` against real Kafka, PostgreSQL and S3.

Pipelines run (checkpoints, a claim-checked output in S3, a failure and a resume, a
shared variable, snapshots in S3); the history is backed up to S3 and to a directory;
everything is dropped (the database, the topics' names, the bucket with its snapshots
and blobs); ``restore-backup`` rebuilds new, empty deployments from each backup, and
``check`` reports every execution consistent, with restore (snapshot + events) equal to
the fold of the restored history, the read model equal to the original one. With
encryption on, the wrapped data keys travel with the backup: a kept execution reads back
in plaintext after the restore, an execution erased before the backup stays erased.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from typer.testing import CliRunner, Result

import orchestrator
from orchestrator import Pipeline, PipelineFailed
from orchestrator.backup import deployment
from orchestrator.cli import app
from orchestrator.config import load_config_file
from orchestrator.events.codec import default_codec
from orchestrator.events.fold import fold
from orchestrator.projections import PostgresEventArchive
from orchestrator.snapshots import snapshot_history
from orchestrator.snapshots.postgres import PostgresSnapshotIndex
from orchestrator.state import StateManager, checkpoint
from tests.histories import task_started

_STATE_COLUMNS = (
    "execution_id, pipeline_id, status, epoch, last_sequence, progress, completed_tasks,"
    " pending_tasks, context, error, outputs, event_count,"
    " (SELECT array_agg(c.checkpoint_id ORDER BY c.sequence) FROM checkpoints c"
    "  WHERE c.execution_id = p.execution_id AND c.deleted_at IS NULL) AS checkpoints"
)


def _config(tmp_path: Path, name: str, bucket: str, topics: str, *, encrypt: bool = False) -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        "state_management:\n"
        "  backend: s3\n"
        f"  config:\n    bucket: {bucket}\n    prefix: states/\n"
        "  event_store:\n"
        "    partitions: 2\n"
        f"    topics:\n      pipeline_events: {topics}.pipeline\n"
        f"      shared_events: {topics}.shared\n"
        "  snapshots:\n    frequency: 4\n"
        "recovery:\n  strategies:\n    task_failure:\n      max_attempts: 1\n"
        + ("checkpointing:\n  storage:\n    encrypt: true\n" if encrypt else "")
    )
    return path


def _env(kafka: Any, s3: Any, dsn: str) -> dict[str, str]:
    return {
        "KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "DATABASE_URL": dsn,
        "S3_ENDPOINT_URL": s3.endpoint_url,
        "AWS_ACCESS_KEY_ID": s3.access_key or "any",
        "AWS_SECRET_ACCESS_KEY": s3.secret_key or "any",
        "AWS_DEFAULT_REGION": s3.region,
    }


async def _cli(env: dict[str, str], *args: Any) -> Result:
    runner = CliRunner()
    return await asyncio.to_thread(
        runner.invoke, app, [str(a) for a in args], env={**env, "COLUMNS": "200"}
    )


def _pipelines(run: str, model: dict[str, bool]) -> list[Pipeline]:
    report = Pipeline(f"report-{run}")

    @report.task()
    async def fetch(context: Any) -> dict[str, int]:
        await checkpoint.save("fetched", {"pages": 3, "progress": 0.5})
        return {"pages": 3}

    @report.task(depends_on=["fetch"])
    async def summarize(fetch: dict[str, int]) -> str:
        if not model["up"]:
            raise RuntimeError("model timed out")
        return f"{fetch['pages']} pages"

    big = Pipeline(f"big-{run}")

    @big.task()
    async def generate(context: Any) -> str:
        return secrets.token_hex(400_000)  # ~400 KB compressed: claim-checked to S3

    return [report, big]


async def _states(dsn: str) -> dict[str, dict[str, Any]]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(f"SELECT {_STATE_COLUMNS} FROM pipeline_states p")
        shared = await conn.fetch("SELECT namespace, name, value, version FROM shared_variables")
    finally:
        await conn.close()
    states = {r["execution_id"]: dict(r) for r in rows}
    states["<shared>"] = {f"{r['namespace']}/{r['name']}": dict(r) for r in shared}
    return states


async def _drop_bucket(s3: Any, bucket: str) -> None:
    def drop() -> None:
        client = s3.client()
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            for obj in page.get("Contents", []):
                client.delete_object(Bucket=bucket, Key=obj["Key"])
        client.delete_bucket(Bucket=bucket)

    await asyncio.to_thread(drop)


async def _restore_equals_fold(config: Path, env: dict[str, str]) -> int:
    """For every execution: restore (newest snapshot + later events) == the full fold;
    the number of restores that started from a snapshot."""
    dep = deployment(load_config_file(config).settings, env)
    pool = await asyncpg.create_pool(env["DATABASE_URL"], min_size=1, max_size=2)
    try:
        archive = PostgresEventArchive(pool, default_codec())
        restorer = snapshot_history(
            store=dep.snapshot_store(),
            index=PostgresSnapshotIndex(pool),
            archive=archive,
            codec=dep.snapshot_codec(),
        )
        from_snapshot = 0
        ids = [
            r["execution_id"] for r in await pool.fetch("SELECT execution_id FROM pipeline_states")
        ]
        for execution_id in ids:
            restored = await restorer.latest(execution_id)
            events = await archive.events(execution_id)
            assert restored.state == fold(e.envelope for e in events), execution_id
            from_snapshot += restored.snapshot_key is not None
        return from_snapshot
    finally:
        await pool.close()


async def test_backup_drop_restore_and_check(
    kafka: Any, s3: Any, make_database: Any, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:8]
    bucket, backups = f"state-{run}", f"backups-{run}"
    source_dsn = await make_database(migrated=False)
    source = _config(tmp_path, "source", bucket, f"bk-{run}-a")
    env = _env(kafka, s3, source_dsn)
    model = {"up": False}
    report, big = _pipelines(run, model)
    async with orchestrator.connect(config=source, environ=env, supervise=False) as state:
        for _ in range(2):
            try:
                await state.run(report)
            except PipelineFailed as failed:
                model["up"] = True
                resumed = await state.resume(failed.execution_id)
                assert resumed.status == "completed"
        assert model["up"]
        await state.run(big)
        await StateManager().set_variable(f"ns-{run}", "threshold", 0.8)
        pool = state.pool
        for _ in range(200):
            if await pool.fetchval("SELECT count(*) FROM snapshots") >= 3:
                break
            await asyncio.sleep(0.1)
        assert await pool.fetchval("SELECT count(*) FROM snapshots") >= 3
    before = await _states(source_dsn)
    assert len(before) - 1 >= 3

    to_s3 = await _cli(env, "backup", "--to", f"s3://{backups}/nightly", "--config", source)
    assert to_s3.exit_code == 0, to_s3.output
    assert "blob(s)" in to_s3.stdout and " 1 blob(s)" in to_s3.stdout
    to_dir = await _cli(env, "backup", "--to", tmp_path / "backup", "--config", source, "--json")
    assert to_dir.exit_code == 0, to_dir.output
    manifest = json.loads(to_dir.stdout)
    assert manifest["counts"]["snapshots"] >= 3 and manifest["counts"]["blobs"] == 1
    assert set(manifest["executions"]) == set(before) - {"<shared>"}
    assert (tmp_path / "backup" / "schemas" / "releases" / "v1" / "FINGERPRINT").exists()
    again = await _cli(env, "backup", "--to", tmp_path / "backup", "--config", source)
    assert again.exit_code == 1 and "already there" in again.output

    # Drop everything: the bucket (snapshots and blobs), the database; new topics.
    await _drop_bucket(s3, bucket)
    for name, src in (("s3", f"s3://{backups}/nightly"), ("dir", tmp_path / "backup")):
        target = _config(tmp_path, f"target-{name}", bucket if name == "s3" else f"c-{run}",
                         f"bk-{run}-{name}")  # fmt: skip
        target_env = _env(kafka, s3, await make_database(migrated=False))
        restored = await _cli(target_env, "restore-backup", "--from", src, "--config", target)
        assert restored.exit_code == 0, restored.output
        assert "1 blob(s)" in restored.stdout, restored.stdout
        check = await _cli(target_env, "check", "--config", target, "--json")
        assert check.exit_code == 0, check.output
        assert json.loads(check.stdout)["consistent"] is True
        assert await _states(target_env["DATABASE_URL"]) == before
        assert await _restore_equals_fold(target, target_env) >= 1
        blobs = await asyncio.to_thread(s3.client().list_objects_v2, Bucket=bucket, Prefix="blobs/")
        assert blobs["KeyCount"] == 1  # the claim-checked output, back at its URI
        refused = await _cli(target_env, "restore-backup", "--from", src, "--config", target)
        assert refused.exit_code == 1
        assert "needs an empty deployment" in refused.output, refused.output


def _backed_up(folder: Path) -> dict[str, list[str]]:
    """Event ids per execution, in backup order, read with fastavro alone."""
    from fastavro import reader

    manifest = json.loads((folder / "manifest.json").read_text())
    found: dict[str, list[str]] = {}
    for entry in manifest["files"]:
        if entry["kind"] != "events":
            continue
        with open(folder / entry["path"], "rb") as f:
            for record in reader(f):
                assert isinstance(record, dict)
                if record["execution_id"] is not None:
                    found.setdefault(record["execution_id"], []).append(record["event_id"])
    return found


async def test_a_backup_taken_while_writers_run_holds_a_prefix_of_each_execution(
    kafka: Any, s3: Any, make_database: Any, tmp_path: Path
) -> None:
    import random

    from orchestrator.backup import take_backup
    from orchestrator.events.simulate import simulate_execution

    run = uuid.uuid4().hex[:8]
    config = _config(tmp_path, "live", f"live-{run}", f"bk-{run}-live")
    env = _env(kafka, s3, await make_database(migrated=False))
    rng = random.Random(7)
    histories = [simulate_execution(f"live-{run}-{i}", rng, tasks=6) for i in range(12)]
    dep = deployment(load_config_file(config).settings, env)
    async with orchestrator.connect(config=config, environ=env, supervise=False) as state:
        log = state.runtime.log

        async def write() -> None:  # every execution a few events at a time, interleaved
            cursors = [0] * len(histories)
            while any(c < len(h) for c, h in zip(cursors, histories, strict=True)):
                for i, history in enumerate(histories):
                    if cursors[i] < len(history):
                        await log.append_batch(history[cursors[i] : cursors[i] + 3])
                        cursors[i] += 3
                await asyncio.sleep(0.02)

        writer = asyncio.create_task(write())
        await asyncio.sleep(0.5)
        during = await take_backup(dep, dep.folder(f"file://{tmp_path / 'during'}"))
        await writer
    await take_backup(dep, dep.folder(str(tmp_path / "after")))
    partial, complete = _backed_up(tmp_path / "during"), _backed_up(tmp_path / "after")
    assert sum(map(len, complete.values())) == sum(map(len, histories))
    assert 0 < sum(map(len, partial.values())) < sum(map(len, histories)), during.counts
    for execution_id, ids in partial.items():
        assert complete[execution_id][: len(ids)] == ids, execution_id
    assert during.counts.get("from_log", 0) + during.counts.get("from_archive", 0) > 0


async def test_an_upcaster_applies_in_the_processor_check_and_restore(
    kafka: Any, s3: Any, make_database: Any, tmp_path: Path
) -> None:
    """Events written under release v1 go through a registered upcaster wherever they are
    read: the processor's read model, ``check``'s fold and a restored deployment."""
    from datetime import UTC, datetime

    from orchestrator.events import catalogue as c
    from orchestrator.events.codec import EventCodec
    from orchestrator.events.envelope import Envelope
    from orchestrator.events.schemas import default_registry
    from orchestrator.events.upcast import UpcasterRegistry, default_upcasters, upcaster

    run = uuid.uuid4().hex[:8]
    execution_id = f"old-{run}"
    payloads: list[Any] = [
        *task_started("old", "t"),
        c.TaskCompleted(task_id="t", details=c.ExecutionDetails(tokens_used=3)),
    ]
    events = [
        Envelope(
            execution_id=execution_id, pipeline_id="old", sequence=n, epoch=1, payload=p,
            producer="old-node", occurred_at=datetime.now(UTC),
        )
        for n, p in enumerate(payloads, start=1)
    ]  # fmt: skip
    registry = default_registry()
    v1 = EventCodec(registry, writer=registry.release("v1"), upcasters=UpcasterRegistry())

    @upcaster("TaskCompleted", from_version=1)
    def tokens_were_thousands(payload: dict[str, Any]) -> dict[str, Any]:
        payload["details"]["tokens_used"] *= 1000
        return payload

    async def tokens(dsn: str) -> Any:
        conn = await asyncpg.connect(dsn)
        try:
            details = await conn.fetchval(
                "SELECT execution_details FROM task_states WHERE execution_id = $1", execution_id
            )
        finally:
            await conn.close()
        return json.loads(details)["tokens_used"]

    try:
        config = _config(tmp_path, "old", f"old-{run}", f"bk-{run}-old")
        env = _env(kafka, s3, await make_database(migrated=False))
        async with orchestrator.connect(config=config, environ=env, supervise=False) as state:
            topic = state.runtime.log.topics.pipeline.name
            positions = await state.runtime.log.append_raw_batch(
                [(topic, e.key(), v1.encode(e)) for e in events]
            )
            await state.runtime.wait_for(positions[-1:], timeout=60)
        assert await tokens(env["DATABASE_URL"]) == 3000
        check = await _cli(env, "check", "--config", config, "--json")
        assert check.exit_code == 0 and json.loads(check.stdout)["consistent"], check.output
        backed = await _cli(env, "backup", "--to", tmp_path / "old-backup", "--config", config)
        assert backed.exit_code == 0, backed.output
        target = _config(tmp_path, "old-target", f"old2-{run}", f"bk-{run}-old2")
        target_env = _env(kafka, s3, await make_database(migrated=False))
        restored = await _cli(
            target_env, "restore-backup", "--from", tmp_path / "old-backup", "--config", target
        )
        assert restored.exit_code == 0, restored.output
        assert await tokens(target_env["DATABASE_URL"]) == 3000
    finally:
        default_upcasters().unregister("TaskCompleted", 1)


def _data_keys(path: Path) -> dict[str, dict[str, Any]]:
    """The backed-up ``data_keys`` rows by scope, read with fastavro alone."""
    from fastavro import reader

    with open(path, "rb") as f:
        return {r["scope"]: r for r in reader(f) if isinstance(r, dict)}


def _secret_pipeline(name: str, token: str) -> Pipeline:
    pipeline = Pipeline(name)

    @pipeline.task()
    async def fetch(context: Any) -> dict[str, str]:
        await checkpoint.save("halfway", {"note": token, "progress": 0.5})
        return {"doc": token}

    return pipeline


async def test_an_encrypted_deployment_restores_with_its_data_keys_and_erasures(
    kafka: Any, s3: Any, make_database: Any, tmp_path: Path, monkeypatch: Any
) -> None:
    from orchestrator.events.crypto import UserDataErased
    from orchestrator.events.keys import KEYS_ENV, generate_key

    monkeypatch.setenv(KEYS_ENV, f"m1:{generate_key()}")  # the ring the App and the CLI see
    run = uuid.uuid4().hex[:8]
    bucket = f"enc-{run}"
    source = _config(tmp_path, "enc-source", bucket, f"bk-{run}-enc", encrypt=True)
    env = _env(kafka, s3, await make_database(migrated=False))
    secret = {name: f"quokka-{name}-{run}" for name in ("kept", "erased")}
    ids: dict[str, str] = {}
    saved: dict[str, str] = {}
    async with orchestrator.connect(config=source, environ=env, supervise=False) as state:
        for name, token in secret.items():
            result = await state.run(_secret_pipeline(f"enc-{name}-{run}", token))
            ids[name] = result.execution_id
            listed = await checkpoint.list(execution_id=result.execution_id)
            saved[name] = next(info.id for info in listed if info.name == "halfway")
    erased = await _cli(env, "executions", "erase", ids["erased"], "--yes",
                        "--database-url", env["DATABASE_URL"])  # fmt: skip
    assert erased.exit_code == 0, erased.output

    backed = await _cli(env, "backup", "--to", tmp_path / "enc", "--config", source, "--json")
    assert backed.exit_code == 0, backed.output
    manifest = json.loads(backed.stdout)
    assert manifest["counts"]["data_keys"] >= 1 and manifest["counts"]["data_keys_erased"] == 1
    keys = [e for e in manifest["files"] if e["kind"] == "data_keys"]
    assert [e["path"] for e in keys] == ["keys/part-00000.avro"] and keys[0]["sha256"]
    rows = _data_keys(tmp_path / "enc" / keys[0]["path"])
    assert rows[ids["erased"]]["wrapped_key"] is None  # the erasure travels, no key with it
    assert rows[ids["kept"]]["master_key_id"] == "m1" and rows[ids["kept"]]["wrapped_key"]

    # Drop everything: the bucket (snapshots), the database; new topics.
    await _drop_bucket(s3, bucket)
    target = _config(tmp_path, "enc-target", bucket, f"bk-{run}-enc2", encrypt=True)
    target_env = _env(kafka, s3, await make_database(migrated=False))
    restored = await _cli(target_env, "restore-backup", "--from", tmp_path / "enc",
                          "--config", target)  # fmt: skip
    assert restored.exit_code == 0, restored.output
    check = await _cli(target_env, "check", "--config", target, "--json")
    assert check.exit_code == 0 and json.loads(check.stdout)["consistent"] is True, check.output

    async with orchestrator.connect(config=target, environ=target_env, supervise=False):
        manager = StateManager()
        task = await manager.get_task_state(ids["kept"], "fetch", consistency="strong")
        assert task.outputs == {"doc": secret["kept"]}
        assert (await checkpoint.restore(saved["kept"])).data["note"] == secret["kept"]
        with pytest.raises(UserDataErased):
            await manager.get_task_state(ids["erased"], "fetch")
        with pytest.raises(UserDataErased):
            await checkpoint.restore(saved["erased"])
