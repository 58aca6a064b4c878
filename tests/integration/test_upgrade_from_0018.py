"""Upgrading a database written by the 0018-era code gives every execution its fold.

Up to 0018 the ``checkpoints`` rows were keyed by ``checkpoint_id``: one row per id,
written over by its execution's later save, left alone by another execution's. A
database at 0018 is built here as that code wrote it for the two histories it could
not hold (an id saved twice while listed, an id two executions saved), with the
archive; after migration 0019 the state the read model loads must equal the fold of
each execution's history, and the processor must keep folding on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg
import pytest
from _databases import MakeDatabase
from test_checkpoint_ids import (
    project,
    records,
    reused_across_executions,
    saved_twice_while_listed,
    served,
)
from test_upgrade_from_0014 import _database_at_0014, _insert

from orchestrator.events import Envelope
from orchestrator.events import catalogue as c
from orchestrator.events.fold import Outcome, fold, step
from orchestrator.projections import readmodel as rm
from orchestrator.projections._batch import fold_batch
from tests.histories import running_writer


def _rows_as_0018(histories: Sequence[Sequence[Envelope]]) -> list[rm.Row]:
    """The ``checkpoints`` rows the 0018-era upsert kept (keyed by id: the first
    execution's, written over whole by its later saves, ``deleted_at`` by its deletes)."""
    rows: dict[str, rm.Row] = {}
    for history in histories:
        current = None
        for event in history:
            result = step(current, event)
            if result.outcome is not Outcome.APPLIED:
                continue
            before, current = current, result.state
            assert current is not None
            p: Any = event.payload
            eid = current.execution_id
            if isinstance(p, c.CheckpointSaved):
                if p.checkpoint_id not in rows or rows[p.checkpoint_id][1] == eid:
                    rows[p.checkpoint_id] = rm.checkpoint_row(current, event)
            elif isinstance(p, c.CheckpointsDeleted) and before is not None:
                for ref in before.checkpoints:
                    kept = rows.get(ref.checkpoint_id)
                    if ref.checkpoint_id in p.checkpoint_ids and kept and kept[1] == eid:
                        rows[ref.checkpoint_id] = (*kept[:-1], event.occurred_at)
    return list(rows.values())


async def test_an_upgraded_database_lists_every_save_as_the_fold_does(
    make_database: MakeDatabase, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.projections.migrator import migrate

    twice, (a, b) = saved_twice_while_listed(), reused_across_executions()
    w = running_writer("exec_withdrawn", 14)  # withdrawn, saved again, withdrawn again
    for name in ("one", "two"):
        w.emit(c.CheckpointSaved(checkpoint_id="w", name=name))
        w.emit(c.CheckpointsDeleted(checkpoint_ids=("w",), reason="prune"))
    w.emit(c.CheckpointSaved(checkpoint_id="w2", name="kept"))
    histories = [list(h.events) for h in (twice, a, b, w)]
    conn = await asyncpg.connect(await _database_at_0014(make_database, monkeypatch, 18))
    try:
        changes = fold_batch(records(histories), {h[0].execution_id: None for h in histories}, {})
        for table, columns, rows in (
            ("pipeline_states", rm.PIPELINE_COLUMNS, changes.pipeline_rows()),
            ("task_states", rm.TASK_COLUMNS, changes.task_rows()),
            ("execution_events", rm.EVENT_COLUMNS, changes.events),
            ("checkpoints", rm.CHECKPOINT_COLUMNS, _rows_as_0018(histories)),
        ):
            await _insert(conn, table, [n for n, _ in columns], rows)
        before = await served(conn)  # what the 0018 rows gave: not the fold
        assert before["exec_twice"] != fold(histories[0])
        assert before["exec_b"] != fold(histories[2])
        assert await migrate(conn) == ["0019_checkpoint_rows_per_save.sql"]
        states = await served(conn)
        for history in histories:
            assert states[history[0].execution_id] == fold(history)
        # The processor folds on from the upgraded rows: a reused id saved by both again.
        for writer in (twice, a):
            writer.emit(c.CheckpointSaved(checkpoint_id="again", name="after upgrade"))
        tails = [twice.events, a.events]
        last = [
            r
            for r in records(tails)
            if r.record.position.offset == len(tails[r.record.position.partition]) - 1
        ]
        await project(conn, last, 1)
        states = await served(conn)
        for tail in tails:
            assert states[tail[0].execution_id] == fold(tail)
    finally:
        await conn.close()
