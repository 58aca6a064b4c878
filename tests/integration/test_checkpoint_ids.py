"""Checkpoint ids in the PostgreSQL read model: the rows give the fold, whatever the ids.

An execution's checkpoint list is its live ``checkpoints`` rows by sequence (migration
0015). Two histories the 0015-0018 rows could not hold: an id saved twice while still
listed (the fold lists both saves; ``decide`` refuses it now, but logs written before
hold it), and an id another execution saved too (a hand-given id: the fold of each
execution lists its own). Each is folded by the processor's writes into a real
PostgreSQL, one batch per event and all in one batch, and the state the read model
loads must equal the pure fold.
"""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg
import pytest
from _databases import MakeDatabase
from _redis_support import compare_with_fold, fresh_store
from aiokafka import TopicPartition

from orchestrator.events import Envelope
from orchestrator.events import catalogue as c
from orchestrator.events.codec import default_codec
from orchestrator.events.consumer import DecodedRecord, RawRecord
from orchestrator.events.envelope import Position
from orchestrator.events.fold import fold
from orchestrator.events.simulate import HistoryWriter
from orchestrator.events.userdata import encode_user_data
from orchestrator.projections._batch import fold_batch
from orchestrator.projections.executions import states_of
from orchestrator.projections.queries import ReadModelQueries
from orchestrator.projections.redisprojector import RedisProjector
from orchestrator.projections.settings import ProjectionSettings
from orchestrator.projections.store import ReadModelStore
from tests.histories import running_writer

TOPIC = "orchestrator.pipeline.events"
NAMES = ProjectionSettings().table_names()


def _saved(cid: str, name: str, **fields: object) -> c.CheckpointSaved:
    return c.CheckpointSaved(
        checkpoint_id=cid, name=name, data=encode_user_data({"at": name}), **fields
    )


def saved_twice_while_listed() -> HistoryWriter:
    """``x`` saved, then saved again while still listed (a log written before ``decide``
    refused that)."""
    w = running_writer("exec_twice", 11)
    w.emit(_saved("x", "first", progress=0.1))
    w.emit(_saved("y", "other", progress=0.2))
    w.emit(_saved("x", "second", task_id="t", progress=0.3))
    w.emit(_saved("z", "last", progress=0.4))
    return w


def reused_across_executions() -> tuple[HistoryWriter, HistoryWriter]:
    """``shared`` saved by two executions (a hand-given id); the second withdraws it and
    saves it again."""
    a, b = running_writer("exec_a", 12), running_writer("exec_b", 13)
    a.emit(_saved("own_a", "a0"))
    a.emit(_saved("shared", "a's", progress=0.5))
    b.emit(_saved("shared", "b's", task_id="t", progress=0.7))
    b.emit(_saved("own_b", "b1"))
    a.emit(_saved("own_a2", "a2"))
    b.emit(c.CheckpointsDeleted(checkpoint_ids=("shared",), reason="prune"))
    b.emit(_saved("shared", "b's again"))
    return a, b


def records(histories: Sequence[Sequence[Envelope]]) -> list[DecodedRecord]:
    """Each history on its own partition, interleaved one event each in turn."""
    codec = default_codec()
    out = []
    for i in range(max(len(h) for h in histories)):
        for partition, history in enumerate(histories):
            if i < len(history):
                raw = codec.encode(history[i])
                record = RawRecord(Position(TOPIC, partition, i), b"k", raw, 0)
                out.append(DecodedRecord(record, codec.decode(raw), None))
    return out


async def project(conn: asyncpg.Connection, records: list[DecodedRecord], size: int) -> None:
    """The processor's load, fold and write of ``records``, ``size`` per batch."""
    settings = ProjectionSettings()
    store = ReadModelStore(settings)
    partitions = {r.record.position.partition for r in records}
    for p in partitions:
        await conn.execute(
            "INSERT INTO projection_offsets (projection, topic, partition, next_offset)"
            " VALUES ($1, $2, $3, 0)",
            settings.name,
            TOPIC,
            p,
        )
    for i in range(0, len(records), size):
        batch = records[i : i + size]
        ids = {r.envelope.execution_id for r in batch if r.envelope is not None}
        async with conn.transaction():
            loaded = await store.load_executions(conn, [e for e in ids if e is not None])
            changes = fold_batch(batch, {e: loaded.get(e) for e in ids if e is not None}, {})
            await store.write(conn, changes)


async def served(conn: asyncpg.Connection) -> dict[str, object]:
    pipelines = await conn.fetch("SELECT * FROM pipeline_states")
    return dict(await states_of(conn, NAMES, pipelines))


@pytest.mark.parametrize("size", [1, 3, 100])
async def test_an_id_saved_twice_while_listed_is_served_as_the_fold_lists_it(
    make_database: MakeDatabase, size: int
) -> None:
    history = saved_twice_while_listed().events
    expected = fold(history)
    assert expected is not None
    assert [r.checkpoint_id for r in expected.checkpoints] == ["x", "y", "x", "z"]
    conn = await asyncpg.connect(await make_database())
    try:
        await project(conn, records([history]), size)
        assert (await served(conn))["exec_twice"] == expected
    finally:
        await conn.close()


@pytest.mark.parametrize("size", [1, 4, 100])
async def test_an_id_reused_by_another_execution_is_listed_by_each(
    make_database: MakeDatabase, size: int
) -> None:
    a, b = (w.events for w in reused_across_executions())
    dsn = await make_database()
    conn = await asyncpg.connect(dsn)
    try:
        await project(conn, records([a, b]), size)
        states = await served(conn)
        assert states["exec_a"] == fold(a)
        assert states["exec_b"] == fold(b)
    finally:
        await conn.close()
    async with asyncpg.create_pool(dsn, min_size=1, max_size=1) as pool:
        found = await ReadModelQueries(pool).find_checkpoint("shared")
        listed = await ReadModelQueries(pool).list_checkpoints(None, "exec_b")
    # checkpoint.list shows an id once per execution, as its newest save (withdrawn or not).
    assert [(c.id, c.name) for c in listed] == [("own_b", "b1"), ("shared", "b's again")]
    # The id alone names the newest save of it, wherever it was saved.
    newest = max(
        (e.occurred_at, e.execution_id, e.payload.name)
        for e in (*a, *b)
        if isinstance(e.payload, c.CheckpointSaved) and e.payload.checkpoint_id == "shared"
    )
    assert found is not None and (found.execution_id, found.name) == newest[1:]


async def test_the_redis_backend_lists_them_as_the_fold_does(redis: str) -> None:
    """Redis keeps each execution's list in its own hash field (the fold's list as JSON):
    an id saved twice stays listed twice, a reused id in each execution's list. Folded
    by the Redis processor's ``handle``, two records per batch (no broker needed)."""
    twice, (a, b) = saved_twice_while_listed(), reused_across_executions()
    histories = [twice.events, a.events, b.events]
    settings = ProjectionSettings()
    store = fresh_store(redis, settings)
    projector = RedisProjector(settings, store, "127.0.0.1:9")  # never connects here
    await projector.claim(frozenset(TopicPartition(TOPIC, p) for p in range(len(histories))))
    raw = [r.record for r in records(histories)]
    try:
        for i in range(0, len(raw), 2):
            await projector.handle(raw[i : i + 2])
        assert await compare_with_fold(store, {h[0].execution_id: h for h in histories}) == []
    finally:
        await store.client.aclose()
