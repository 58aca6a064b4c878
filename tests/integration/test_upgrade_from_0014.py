"""Upgrading a database written by the 0014-era code keeps every execution's state.

Migration 0015 moved each execution's checkpoint list out of ``pipeline_states``
into the ``checkpoints`` rows. A database at 0014 is built here as the 0014 code
wrote it (the pipeline row with its ``checkpoints`` list, one ``checkpoints`` row
per id as first saved, the archive), then migrated: the state the read model loads
must equal the fold of the archived history, list order included, and blob
retention must still find the claim-checked checkpoint data.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import asyncpg
import pytest
from _databases import MakeDatabase

from orchestrator.events import Envelope
from orchestrator.events import catalogue as c
from orchestrator.events.codec import default_codec
from orchestrator.events.consumer import DecodedRecord, RawRecord
from orchestrator.events.envelope import Position
from orchestrator.events.fold import Outcome, fold, step
from orchestrator.events.state import ExecutionState
from orchestrator.events.userdata import BlobRef, UserData, encode_user_data
from orchestrator.projections import readmodel as rm
from orchestrator.projections._batch import fold_batch
from orchestrator.projections.blobrefs import open_kept, referenced
from orchestrator.projections.executions import states_of
from orchestrator.projections.settings import ProjectionSettings, ReadModelTables
from orchestrator.projections.store import ReadModelStore
from tests.histories import running_writer

TOPIC = "orchestrator.pipeline.events"
NAMES = {
    "pipeline_states": "pipeline_states",
    "task_states": "task_states",
    "checkpoints": "checkpoints",
    "execution_events": "execution_events",
}
BLOB = hashlib.sha256(b"a large checkpoint").hexdigest()


def _saved(cid: str, name: str, **fields: Any) -> c.CheckpointSaved:
    data = fields.pop("data", encode_user_data({"step": name}))
    return c.CheckpointSaved(checkpoint_id=cid, name=name, data=data, **fields)


def _mixed() -> list[Envelope]:
    """Saved, withdrawn, blob-referenced, NULL task and progress, and a takeover."""
    w = running_writer("exec_mixed", 1)
    blob = UserData(encoding="json", ref=BlobRef(f"blobs/{BLOB[:2]}/{BLOB}", BLOB, 300_000))
    w.emit(_saved("m0", "first", task_id="t", progress=0.1))
    w.emit(_saved("m1", "blob", data=blob))
    w.emit(_saved("m2", "plain", metadata=encode_user_data({"k": 1})))
    w.emit(c.CheckpointsDeleted(checkpoint_ids=("m0", "never_saved"), reason="prune"))
    w.take_over()
    w.emit(_saved("m3", "after takeover", progress=None))
    w.emit(c.CheckpointsDeleted(checkpoint_ids=("m2",), reason=None))
    return w.events


def _long(n: int) -> list[Envelope]:
    """Thousands of checkpoints, every third one withdrawn in a later batch."""
    w = running_writer("exec_long", 2)
    for i in range(n):
        w.emit(_saved(f"l{i}", f"n{i}", progress=i / n))
        if i % 30 == 29:
            gone = tuple(f"l{j}" for j in range(i - 29, i + 1) if j % 3 == 0)
            w.emit(c.CheckpointsDeleted(checkpoint_ids=gone, reason="prune"))
    return w.events


def _resaved() -> list[Envelope]:
    """A checkpoint withdrawn and then saved again under the same id."""
    w = running_writer("exec_resaved", 3)
    w.emit(_saved("r0", "one", progress=0.1))
    w.emit(_saved("r1", "two", progress=0.2))
    w.emit(c.CheckpointsDeleted(checkpoint_ids=("r0",), reason="prune"))
    w.emit(_saved("r2", "three", progress=0.3))
    w.emit(_saved("r0", "one again", task_id="t", progress=0.4))
    return w.events


def _records(history: Sequence[Envelope], partition: int) -> list[DecodedRecord]:
    codec = default_codec()
    return [
        DecodedRecord(
            RawRecord(Position(TOPIC, partition, i), b"k", raw, 0), codec.decode(raw), None
        )
        for i, raw in enumerate(codec.encode(e) for e in history)
    ]


async def _insert(conn: asyncpg.Connection, table: str, columns: Sequence[str], rows: Any) -> None:
    names = ", ".join(f'"{c}"' for c in columns)
    marks = ", ".join(f"${i + 1}" for i in range(len(columns)))
    await conn.executemany(f"INSERT INTO {table} ({names}) VALUES ({marks})", rows)


async def _write_as_0014(
    conn: asyncpg.Connection, history: Sequence[Envelope], partition: int
) -> None:
    """The rows the 0014-era processor wrote for ``history`` (one execution)."""
    changes = fold_batch(_records(history, partition), {history[0].execution_id: None}, {})
    state = fold(history)
    assert isinstance(state, ExecutionState)
    listed = rm.dumps([rm.checkpoint_json(ref) for ref in state.checkpoints])
    pipeline = [(*row, listed) for row in changes.pipeline_rows()]
    await _insert(
        conn, "pipeline_states", [*(n for n, _ in rm.PIPELINE_COLUMNS), "checkpoints"], pipeline
    )
    await _insert(conn, "task_states", [n for n, _ in rm.TASK_COLUMNS], changes.task_rows())
    await _insert(conn, "execution_events", [n for n, _ in rm.EVENT_COLUMNS], changes.events)
    # One checkpoints row per id, as first saved (the 0014 insert was ON CONFLICT DO NOTHING).
    rows: dict[str, rm.Row] = {}
    current = None
    for event in history:
        result = step(current, event)
        if result.outcome is Outcome.APPLIED and isinstance(event.payload, c.CheckpointSaved):
            assert result.state is not None
            rows.setdefault(event.payload.checkpoint_id, rm.checkpoint_row(result.state, event))
        current = result.state if result.outcome is Outcome.APPLIED else current
    columns = [n for n, _ in rm.CHECKPOINT_COLUMNS if n != "deleted_at"]
    await _insert(conn, "checkpoints", columns, [r[: len(columns)] for r in rows.values()])


async def _database_at_0014(
    make_database: MakeDatabase, monkeypatch: pytest.MonkeyPatch, version: int = 14
) -> str:
    """A database migrated up to ``version`` only."""
    from orchestrator.projections import migrator

    every = migrator._migration_files()
    dsn = await make_database(migrated=False)
    conn = await asyncpg.connect(dsn)
    try:
        with monkeypatch.context() as m:
            m.setattr(migrator, "_migration_files", lambda: [f for f in every if f[0] <= version])
            await migrator.migrate(conn)
    finally:
        await conn.close()
    return dsn


async def _upgraded_states(
    make_database: MakeDatabase, monkeypatch: pytest.MonkeyPatch, histories: list[list[Envelope]]
) -> tuple[asyncpg.Connection, dict[str, ExecutionState]]:
    from orchestrator.projections.migrator import migrate

    conn = await asyncpg.connect(await _database_at_0014(make_database, monkeypatch))
    for partition, history in enumerate(histories):
        await _write_as_0014(conn, history, partition)
    applied = await migrate(conn)
    assert any(n.startswith("0015_") for n in applied)
    assert any(n.startswith("0017_") for n in applied)
    pipelines = await conn.fetch("SELECT * FROM pipeline_states ORDER BY execution_id")
    return conn, await states_of(conn, NAMES, pipelines)


async def test_an_upgraded_database_loads_the_fold_of_its_history(
    make_database: MakeDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    histories = [_mixed(), _long(1500)]
    conn, states = await _upgraded_states(make_database, monkeypatch, histories)
    try:
        for history in histories:
            expected = fold(history)
            assert expected is not None and expected.checkpoints
            assert states[history[0].execution_id] == expected
        rows = await conn.fetch("SELECT checkpoint_id, deleted_at FROM checkpoints")
        withdrawn = {k: v for h in histories for k, v in _withdrawn_at(h).items()}
        assert {r["checkpoint_id"]: r["deleted_at"] for r in rows if r["deleted_at"]} == withdrawn
        assert len(rows) == 4 + 1500  # every saved id keeps its row
        await open_kept(conn)
        found = await referenced(conn, ReadModelTables(), [BLOB, "0" * 64])
        assert found == {BLOB}  # the claim-checked checkpoint data is still referenced
    finally:
        await conn.close()


def _withdrawn_at(history: Sequence[Envelope]) -> dict[str, Any]:
    """When each withdrawn checkpoint was withdrawn: the first applied delete naming it
    after its (first) save."""
    saved: dict[str, int] = {}
    deletes: list[tuple[int, Any, tuple[str, ...]]] = []
    current = None
    for event in history:
        result = step(current, event)
        if result.outcome is Outcome.APPLIED:
            current, payload = result.state, event.payload
            if isinstance(payload, c.CheckpointSaved):
                saved.setdefault(payload.checkpoint_id, event.sequence or 0)
            if isinstance(payload, c.CheckpointsDeleted):
                deletes.append((event.sequence or 0, event.occurred_at, payload.checkpoint_ids))
    assert current is not None
    listed = {r.checkpoint_id for r in current.checkpoints}
    return {
        cid: min(at for seq, at, ids in deletes if seq > first and cid in ids)
        for cid, first in saved.items()
        if cid not in listed
    }


async def test_a_checkpoint_saved_again_after_its_withdrawal_keeps_its_place(
    make_database: MakeDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fold lists a re-saved id where (and as) it was saved last."""
    history = _resaved()
    expected = fold(history)
    assert expected is not None
    assert [r.checkpoint_id for r in expected.checkpoints] == ["r1", "r2", "r0"]
    conn, states = await _upgraded_states(make_database, monkeypatch, [history])
    try:
        assert states["exec_resaved"] == expected
    finally:
        await conn.close()


async def test_the_processor_lists_a_checkpoint_saved_again_as_its_last_save(
    make_database: MakeDatabase,
) -> None:
    """The same history folded by the processor's writes, one batch per event: a save
    again is written over the stored row (the upsert), so the rows still give the fold."""
    history = _resaved()
    settings = ProjectionSettings()
    store = ReadModelStore(settings)
    conn = await asyncpg.connect(await make_database())
    try:
        await conn.execute(
            "INSERT INTO projection_offsets (projection, topic, partition, next_offset)"
            " VALUES ($1, $2, 0, 0)",
            settings.name,
            TOPIC,
        )
        for record in _records(history, 0):
            async with conn.transaction():
                loaded = await store.load_executions(conn, ["exec_resaved"])
                changes = fold_batch([record], {"exec_resaved": loaded.get("exec_resaved")}, {})
                await store.write(conn, changes)
        pipelines = await conn.fetch("SELECT * FROM pipeline_states")
        assert (await states_of(conn, NAMES, pipelines))["exec_resaved"] == fold(history)
    finally:
        await conn.close()


async def test_a_migration_that_fails_midway_leaves_the_database_at_0014(
    make_database: MakeDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every pending migration runs in one transaction: a failure (or a kill) after 0015
    rolled it back, and the next start applies it again from the 0014 rows."""
    from orchestrator.projections import migrator

    dsn = await _database_at_0014(make_database, monkeypatch)
    conn = await asyncpg.connect(dsn)
    try:
        await _write_as_0014(conn, _mixed(), 0)
        every = migrator._migration_files()
        broken = [*(f for f in every if f[0] <= 15), (16, "0016_broken.sql", "SELECT 1/0;")]
        with monkeypatch.context() as m, pytest.raises(asyncpg.DivisionByZeroError):
            m.setattr(migrator, "_migration_files", lambda: broken)
            await migrator.migrate(conn)
        assert await conn.fetchval("SELECT max(version) FROM schema_migrations") == 14
        assert await conn.fetchval("SELECT count(checkpoints) FROM pipeline_states") == 1
        await migrator.migrate(conn)
        pipelines = await conn.fetch("SELECT * FROM pipeline_states")
        assert (await states_of(conn, NAMES, pipelines))["exec_mixed"] == fold(_mixed())
    finally:
        await conn.close()
